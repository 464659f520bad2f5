"""Write JSON Schemas of Kueue's kinds from Kueue's own CRD files (run by hand on upgrade).

Usage: kueue_schemas.py KUEUE_CRD_DIR [--version v1beta2] [--ref v0.19.2]

KUEUE_CRD_DIR is `config/components/crd/bases` of a kubernetes-sigs/kueue checkout (or
the CRDs of a release's manifests.yaml split into files). For each kind MIVA uses
(ClusterQueue, LocalQueue, ResourceFlavor, Cohort) the served version's
`openAPIV3Schema` becomes `infra/k8s/schemas/kueue.x-k8s.io_<version>_<kind>.json`:

- OpenAPI v3 keywords map onto JSON Schema 2020-12 as they are (type, properties,
  required, items, enum, pattern, min/max...); descriptions are dropped (size);
- an object with `properties` rejects unknown fields (`additionalProperties: false`), as
  the API server does with strict field validation, unless it has
  `x-kubernetes-preserve-unknown-fields`;
- `x-kubernetes-int-or-string` becomes "integer or string"; `nullable` allows null;
- `x-kubernetes-validations` (CEL rules) are not evaluated offline: `kubectl apply
  --dry-run=server` against a cluster with Kueue checks those.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

KINDS = {
    "ClusterQueue": "kueue.x-k8s.io_clusterqueues.yaml",
    "LocalQueue": "kueue.x-k8s.io_localqueues.yaml",
    "ResourceFlavor": "kueue.x-k8s.io_resourceflavors.yaml",
    "Cohort": "kueue.x-k8s.io_cohorts.yaml",
}
OUT = Path(__file__).resolve().parents[1] / "k8s" / "schemas"
KEEP = {
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "additionalProperties",
    "default",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
}


def convert(node: Any) -> Any:
    """One OpenAPI v3 (structural CRD) schema node -> JSON Schema."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in KEEP:
            continue
        if key == "properties":
            out[key] = {name: convert(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = convert(value) if isinstance(value, dict) else value
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [convert(v) for v in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def kind_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    if version not in served:
        raise SystemExit(f"{kind}: version {version} not served; served: {sorted(served)}")
    schema = convert(served[version]["schema"]["openAPIV3Schema"])
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"const": f"{group}/{version}"}
    props["kind"] = {"const": kind}
    # metadata is the generic ObjectMeta: the built-in schemas check it elsewhere
    props["metadata"] = {"type": "object"}
    schema.pop("additionalProperties", None)
    schema["additionalProperties"] = False
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{group}/{version} {kind} (from Kueue's CRD openAPIV3Schema)",
        **schema,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crd_dir", type=Path)
    parser.add_argument("--version", default="v1beta2")
    parser.add_argument("--ref", default="", help="Kueue release the CRDs come from (recorded)")
    args = parser.parse_args(argv)
    for kind, name in KINDS.items():
        crd = yaml.safe_load((args.crd_dir / name).read_text())
        schema = kind_schema(crd, args.version)
        if args.ref:
            schema["title"] += f", Kueue {args.ref}"
        out = OUT / f"kueue.x-k8s.io_{args.version}_{kind.lower()}.json"
        out.write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n")
        print(f"wrote {out.relative_to(OUT.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
