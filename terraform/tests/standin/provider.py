#!/usr/bin/env python3
"""A schema-only stand-in for the oracle/oci Terraform provider.

The real provider cannot be downloaded on the machines that run the tests. This one serves the
oracle/oci 7.19.0 schema (rebuilt by schema_from_cdktf.py) over the Terraform plugin protocol,
using the `tf` package from PyPI, so that `terraform validate` and `terraform test` with
`mock_provider "oci"` check the configuration against the real attribute names and types.

It never talks to a cloud: configuring it (a real plan or apply) is an error, and so is every
resource operation. Terraform finds it through `dev_overrides` in a CLI config file; the
schema path comes from TURND_OCI_SCHEMA.
"""

import json
import os
import sys

from tf import runner, schema
from tf.gen import tfplugin_pb2 as pb
from tf.iface import DataSource, Provider, Resource

STANDIN_ONLY = (
    "schema-only stand-in for oracle/oci",
    "This provider only serves the oracle/oci schema for `terraform validate` and "
    "`terraform test` with mock_provider; it cannot plan or apply against a cloud.",
)


class CtyType:
    """An attribute type given as cty JSON (\"string\", [\"list\", \"string\"], ...)."""

    def __init__(self, cty):
        self.cty = cty

    def tf_type(self) -> bytes:
        return json.dumps(self.cty).encode()

    def encode(self, value):
        return value

    def decode(self, value):
        return value

    def semantically_equal(self, a, b) -> bool:
        return a == b


class Nested(schema.NestedBlock):
    """A nested block in any nesting mode (the `tf` package knows only set and single)."""

    MODES = {
        "list": pb.Schema.NestedBlock.NestingMode.LIST,
        "set": pb.Schema.NestedBlock.NestingMode.SET,
        "single": pb.Schema.NestedBlock.NestingMode.SINGLE,
    }

    def __init__(self, name: str, spec: dict):
        super().__init__(
            name,
            schema.NestMode.Set,
            to_block(spec["block"]),
            min_items=spec.get("min_items"),
            max_items=spec.get("max_items"),
        )
        self.mode = spec["nesting"]

    def to_pb(self):
        return pb.Schema.NestedBlock(
            type_name=self.type_name,
            block=self.block.to_pb(),
            min_items=self.min_items,
            max_items=self.max_items,
            nesting=self.MODES[self.mode],
        )

    def encode(self, value):
        return value

    def decode(self, value):
        return value

    def semantically_equal(self, a, b) -> bool:
        return a == b


def attributes(block: dict) -> list:
    return [
        schema.Attribute(
            name,
            CtyType(spec["type"]),
            required=spec.get("required", False),
            optional=spec.get("optional", False),
            computed=spec.get("computed", False),
        )
        for name, spec in sorted(block["attributes"].items())
    ]


def to_block(block: dict) -> schema.Block:
    return schema.Block(
        attributes=attributes(block),
        block_types=[Nested(name, spec) for name, spec in sorted(block["blocks"].items())],
    )


def to_schema(block: dict) -> schema.Schema:
    return schema.Schema(
        version=0,
        attributes=attributes(block),
        block_types=[Nested(name, spec) for name, spec in sorted(block["blocks"].items())],
    )


def refuse(self, ctx, *args):
    ctx.diagnostics.add_error(*STANDIN_ONLY)


def make_classes(kind, schemas: dict) -> list:
    base = Resource if kind == "resource" else DataSource
    methods = ("create", "read", "update", "delete") if kind == "resource" else ("read",)
    classes = []
    for name, block in schemas.items():
        body = {m: refuse for m in methods}
        body["__init__"] = lambda self, provider: None
        body["get_name"] = classmethod(lambda cls, n=name: n)
        body["get_schema"] = classmethod(lambda cls, b=block: to_schema(b))
        classes.append(type(f"{kind}_{name}", (base,), body))
    return classes


class OciStandin(Provider):
    def __init__(self, path: str):
        with open(path) as f:
            self.schema = json.load(f)

    def get_model_prefix(self) -> str:
        return ""

    def full_name(self) -> str:
        return "registry.terraform.io/oracle/oci"

    def get_provider_schema(self, diags):
        return to_schema(self.schema["provider"])

    def validate_config(self, diags, config):
        pass

    def configure_provider(self, diags, config):
        diags.add_error(*STANDIN_ONLY)

    def get_resources(self):
        return make_classes("resource", self.schema["resources"])

    def get_data_sources(self):
        return make_classes("data", self.schema["data_sources"])


def cached_schema_response(path: str):
    """GetProviderSchema that answers from PATH.pb, written on first use.

    Building the response for ~3000 schemas takes about a second, and `terraform test` starts
    the provider several times per run block; the serialized answer loads in milliseconds.
    """
    from tf.provider import ProviderServicer

    build = ProviderServicer.GetProviderSchema
    cache = path + ".pb"

    def answer(self, request, context):
        if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(path):
            with open(cache, "rb") as f:
                return pb.GetProviderSchema.Response.FromString(f.read())
        response = build(self, request, context)
        tmp = f"{cache}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(response.SerializeToString())
        os.replace(tmp, cache)
        return response

    ProviderServicer.GetProviderSchema = answer


if __name__ == "__main__":
    schema_path = os.environ["TURND_OCI_SCHEMA"]
    cached_schema_response(schema_path)
    runner.run_provider(OciStandin(schema_path), sys.argv)
