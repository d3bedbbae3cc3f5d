//! The seed report's chart, as a self-contained SVG: files/s per second for
//! every phase on one time axis, and p50/p95/p99 latency bars per phase.

use std::fmt::Write as _;

use super::stats::{Report, Second};

/// 1, 2 or 5 times a power of ten, at least `v`.
pub(super) fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= v * (1.0 - 1e-9) {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];

/// Two panels: ops/s per second for each phase on one time axis, and
/// p50/p95/p99 latency bars per phase.
pub(super) fn svg_chart(phases: &[Report]) -> String {
    let (w, h) = (900.0, 620.0);
    let (left, right) = (70.0, 880.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // Panel 1: throughput over time.
    let (top, bottom) = (40.0, 290.0);
    let total_secs: usize = phases
        .iter()
        .map(|p| p.timeline.len())
        .sum::<usize>()
        .max(1);
    let peak = phases
        .iter()
        .flat_map(|p| p.timeline.iter().map(|t| rate(p, t)))
        .fold(0.0, f64::max);
    let ymax = nice_ceil(peak);
    let xs = |t: f64| left + (right - left) * t / total_secs as f64;
    let ys = |v: f64| bottom - (bottom - top) * v / ymax;
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">Throughput (files/s, per second)</text>"
    );
    axes(&mut s, left, right, top, bottom, ymax, "files/s");
    let step = nice_ceil(total_secs as f64 / 10.0).max(1.0);
    let mut t = 0.0;
    while t <= total_secs as f64 + 1e-9 {
        let x = xs(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            bottom + 17.0,
            fmt_num(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds</text>",
        (left + right) / 2.0,
        bottom + 32.0
    );
    let mut offset = 0usize;
    for (k, p) in phases.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let pts: Vec<String> = p
            .timeline
            .iter()
            .map(|t| {
                format!(
                    "{:.1},{:.1}",
                    xs((offset + t.t as usize) as f64 + 0.5),
                    ys(rate(p, t))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
        if pts.len() <= 60 {
            for pt in &pts {
                let (x, y) = pt.split_once(',').unwrap_or_default();
                let _ = writeln!(
                    s,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>"
                );
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" font-weight=\"bold\">{} ({:.0}/s)</text>",
            left + 8.0,
            top + 14.0 + 16.0 * k as f64,
            p.mode,
            p.ops_per_sec()
        );
        offset += p.timeline.len();
        if k + 1 < phases.len() {
            let x = xs(offset as f64);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>"
            );
        }
    }
    // Panel 2: latency percentiles.
    let (top, bottom) = (370.0, 570.0);
    let lmax = nice_ceil(phases.iter().map(|p| p.p99_ms).fold(0.0, f64::max));
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{:.1}\" font-size=\"15\" font-weight=\"bold\">Latency percentiles (ms)</text>",
        top - 16.0
    );
    axes(&mut s, left, right, top, bottom, lmax, "ms");
    let group_w = (right - left) / phases.len().max(1) as f64;
    let bar_w = (group_w / 5.0).min(60.0);
    let shades = [("p50", 1.0), ("p95", 0.7), ("p99", 0.45)];
    for (k, p) in phases.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let gx = left + group_w * k as f64 + (group_w - 3.0 * bar_w) / 2.0;
        for (j, ((label, opacity), v)) in shades
            .iter()
            .zip([p.p50_ms, p.p95_ms, p.p99_ms])
            .enumerate()
        {
            let x = gx + bar_w * j as f64;
            let y = bottom - (bottom - top) * (v / lmax).min(1.0);
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\" fill-opacity=\"{opacity}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{label}</text>",
                bar_w - 4.0,
                bottom - y,
                x + (bar_w - 4.0) / 2.0,
                y - 3.0,
                fmt_num(v),
                x + (bar_w - 4.0) / 2.0,
                bottom + 13.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{color}\" font-weight=\"bold\">{}</text>",
            gx + 1.5 * bar_w,
            bottom + 30.0,
            p.mode
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Ops per second of a timeline bucket; the last bucket of a phase usually
/// covers only part of a second and is scaled to a rate.
fn rate(p: &Report, t: &Second) -> f64 {
    let covered = p.seconds - f64::from(t.t);
    if covered > 0.05 && covered < 1.0 {
        t.ops as f64 / covered
    } else {
        t.ops as f64
    }
}

/// Y axis with five gridlines from 0 to `ymax`, and the x axis line.
fn axes(s: &mut String, left: f64, right: f64, top: f64, bottom: f64, ymax: f64, unit: &str) {
    for k in 0..=5 {
        let v = ymax * f64::from(k) / 5.0;
        let y = bottom - (bottom - top) * f64::from(k) / 5.0;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#333\"/><text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{unit}</text>",
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
}
