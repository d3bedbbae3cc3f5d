"""Parses a /metrics page with the OpenMetrics parser of the PyPI package
prometheus-client (strict: a malformed page raises).

Usage: metrics_parse.py PAGE_FILE
Prints one line per family, `T<TAB>family<TAB>type`, and per sample,
`S<TAB>name<TAB>labels<TAB>value` with the labels as `key=value` pairs
joined by US (0x1f): simple to read from Rust without a JSON parser.
"""
import sys

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError as e:  # the test must fail loudly, never skip
    print("prometheus-client is not installed: %s" % e, file=sys.stderr)
    sys.exit(3)


def main():
    with open(sys.argv[1]) as f:
        text = f.read()
    out = []
    for family in text_string_to_metric_families(text):
        out.append("T\t%s\t%s" % (family.name, family.type))
        for s in family.samples:
            labels = "\x1f".join("%s=%s" % kv for kv in sorted(s.labels.items()))
            out.append("S\t%s\t%s\t%r" % (s.name, labels, float(s.value)))
    print("\n".join(out))


if __name__ == "__main__":
    main()
