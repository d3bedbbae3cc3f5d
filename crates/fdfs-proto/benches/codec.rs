//! Criterion benches of the wire codec: the per-request work a server does
//! before touching the disk. Run with `cargo bench -p fdfs-proto --bench codec`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fdfs_proto::metadata::{pack, unpack, MetaPair};
use fdfs_proto::storage_msg::{DownloadReq, UploadReq};
use fdfs_proto::{FileNameRecord, Header, HEADER_LEN};

const REMOTE: &str = "M00/00/3A/wKgAA2a8x0yAEk9lAAGa8pYq0fQ123.jpg";

fn header(c: &mut Criterion) {
    let mut g = c.benchmark_group("header");
    let h = Header::new(11, 64 * 1024 + 15);
    g.bench_function("to_bytes", |b| {
        b.iter(|| black_box(black_box(h).to_bytes()))
    });
    let raw = h.to_bytes();
    g.bench_function("from_bytes", |b| {
        b.iter(|| black_box(Header::from_bytes(black_box(&raw))))
    });
    let mut buf = BytesMut::with_capacity(HEADER_LEN * 2);
    g.bench_function("encode+decode BytesMut", |b| {
        b.iter(|| {
            black_box(h).encode(&mut buf);
            black_box(Header::decode(&mut buf))
        })
    });
    g.finish();
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    let up = UploadReq {
        store_path_index: -1,
        file_size: 65_536,
        ext: "jpg".into(),
    };
    let mut head = BytesMut::new();
    up.encode_head(&mut head);
    let head = head.freeze();
    g.bench_function("UploadReq::encode_head", |b| {
        let mut buf = BytesMut::with_capacity(64);
        b.iter(|| {
            buf.clear();
            black_box(&up).encode_head(&mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("UploadReq::decode_head", |b| {
        b.iter(|| black_box(UploadReq::decode_head(black_box(&head), 65_536 + 15)))
    });
    let dl = DownloadReq {
        offset: 0,
        length: 0,
        group: "group1".into(),
        remote: REMOTE.into(),
    };
    let mut body = BytesMut::new();
    dl.encode(&mut body);
    let body = body.freeze();
    g.bench_function("DownloadReq::encode", |b| {
        let mut buf = BytesMut::with_capacity(128);
        b.iter(|| {
            buf.clear();
            black_box(&dl).encode(&mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("DownloadReq::decode", |b| {
        b.iter(|| black_box(DownloadReq::decode(black_box(&body))))
    });
    g.finish();
}

fn file_name_record(c: &mut Criterion) {
    let mut g = c.benchmark_group("file_name_record");
    let rec = FileNameRecord {
        source: [192, 168, 0, 3],
        timestamp: 1_723_000_000,
        size_field: 105_202,
        crc32: 0x9623_1E2D,
    };
    g.bench_function("encode (base64)", |b| {
        b.iter(|| black_box(black_box(&rec).encode()))
    });
    let text = rec.encode();
    g.bench_function("decode (base64)", |b| {
        b.iter(|| black_box(FileNameRecord::decode(black_box(&text))))
    });
    g.bench_function("RemoteName::parse+record", |b| {
        b.iter(|| {
            black_box(
                fdfs_proto::RemoteName::parse(black_box(REMOTE), 256)
                    .ok()
                    .and_then(|r| r.record()),
            )
        })
    });
    g.finish();
}

fn metadata(c: &mut Criterion) {
    let mut g = c.benchmark_group("metadata");
    let pairs: Vec<MetaPair> = (0..8)
        .map(|i| {
            (
                format!("name{i}").into_bytes(),
                format!("value-{i}-{}", "x".repeat(20)).into_bytes(),
            )
        })
        .collect();
    let packed = pack(&pairs);
    g.throughput(Throughput::Bytes(packed.len() as u64));
    g.bench_function("pack 8 pairs", |b| {
        b.iter(|| black_box(pack(black_box(&pairs))))
    });
    g.bench_function("unpack 8 pairs", |b| {
        b.iter(|| black_box(unpack(black_box(&packed))))
    });
    g.finish();
}

criterion_group!(benches, header, requests, file_name_record, metadata);
criterion_main!(benches);
