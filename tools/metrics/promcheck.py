#!/usr/bin/python3
"""Parses Prometheus text-format files with prometheus_client's parser (Debian's
python3-prometheus-client, what node-exporter's textfile collector expects to read) and
prints every sample as JSON: [{"name", "labels", "value"}]. Exits 1 naming the file and the
error if one does not parse. Used by the tests on the shims' metrics files:
    tools/metrics/promcheck.py FILE...
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main(paths):
    samples = []
    for path in paths:
        with open(path) as file:
            text = file.read()
        try:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    samples.append({"name": sample.name, "labels": sample.labels, "value": sample.value})
        except Exception as error:  # the parser raises ValueError and friends
            print(f"{path}: does not parse: {error}", file=sys.stderr)
            return 1
    json.dump(samples, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
