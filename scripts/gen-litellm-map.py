#!/usr/bin/env python3
"""Regenerate daemon/data/litellm/models.tsv from LiteLLM's price/context map.

Dev-only: building and testing zend never runs this; the generated file is committed.

    python3 scripts/gen-litellm-map.py [path/to/model_prices_and_context_window.json]

Default input: ../shared/data/litellm/model_prices_and_context_window.json (see SOURCE.md there).
Output: one tab-separated row per model entry, header first, columns:

    name provider mode max_input max_output input output cache_read cache_write reasoning flags tiers endpoints

Prices are USD per token (Python repr, shortest round-trip form); an empty field is "unknown".
flags: v=vision t=function calling j=response schema (JSON) r=reasoning c=prompt caching.
tiers: `;`-separated `THRESHOLD:input:output:cache_read` from the standard-tier
`*_above_<N>k_tokens` keys (priority/batch/flex variants are skipped).
endpoints: which of the two text endpoints `supported_endpoints` lists, `c` = /v1/chat/completions,
`r` = /v1/responses, `-` = neither; empty when the entry lists no endpoints.
The special keys `sample_spec` and `fallback_generalizations` are skipped.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_IN = os.path.join(ROOT, "..", "shared", "data", "litellm", "model_prices_and_context_window.json")
OUT = os.path.join(ROOT, "daemon", "data", "litellm", "models.tsv")
TEXT_ENDPOINTS = [("/v1/chat/completions", "c"), ("/v1/responses", "r")]
SPECIAL = {"sample_spec", "fallback_generalizations"}
FLAGS = [
    ("supports_vision", "v"),
    ("supports_function_calling", "t"),
    ("supports_response_schema", "j"),
    ("supports_reasoning", "r"),
    ("supports_prompt_caching", "c"),
]
TIER = re.compile(r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost)_above_(\d+)k_tokens$")


def num(value):
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        try:
            return repr(float(value)) if "." in value or "e" in value else str(int(value))
        except ValueError:
            return ""
    return ""


def clean(text):
    return str(text).replace("\t", " ").replace("\n", " ")


def endpoints(listed):
    if not isinstance(listed, list) or not listed:
        return ""
    codes = "".join(code for path, code in TEXT_ENDPOINTS if path in listed)
    return codes or "-"


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_IN
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    rows = ["name\tprovider\tmode\tmax_input\tmax_output\tinput\toutput\tcache_read\tcache_write\treasoning\tflags\ttiers\tendpoints"]
    for name in sorted(data):
        entry = data[name]
        if name in SPECIAL or not isinstance(entry, dict):
            continue
        tiers = {}
        for key, value in entry.items():
            m = TIER.match(key)
            if m:
                tiers.setdefault(int(m.group(2)) * 1000, {})[m.group(1)] = value
        tier_text = ";".join(
            f"{t}:{num(v.get('input_cost_per_token'))}:{num(v.get('output_cost_per_token'))}:{num(v.get('cache_read_input_token_cost'))}"
            for t, v in sorted(tiers.items())
        )
        max_input = entry.get("max_input_tokens")
        if max_input is None:
            max_input = entry.get("max_tokens")
        rows.append("\t".join([
            clean(name),
            clean(entry.get("litellm_provider", "")),
            clean(entry.get("mode", "")),
            num(max_input),
            num(entry.get("max_output_tokens")),
            num(entry.get("input_cost_per_token")),
            num(entry.get("output_cost_per_token")),
            num(entry.get("cache_read_input_token_cost")),
            num(entry.get("cache_creation_input_token_cost")),
            num(entry.get("output_cost_per_reasoning_token")),
            "".join(letter for key, letter in FLAGS if entry.get(key) is True),
            tier_text,
            endpoints(entry.get("supported_endpoints")),
        ]))
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(rows) + "\n")
    print(f"wrote {len(rows) - 1} models to {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
