"""Generates the Python gRPC code (with .pyi stubs) from protos/ into libs/.

Run `python -m attune.codegen` after editing a .proto; tests/foundation/test_contract.py fails when
the committed code is stale. The typed gRPC stubs (*_pb2_grpc.pyi) come from mypy-protobuf's
protoc-gen-mypy_grpc plugin, a developer tool installed with the test extras (`pip install -e
'.[test]'`), so a production install does not carry it.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "protos"
LIBS_ROOT = REPO_ROOT / "libs"


def proto_files() -> list[Path]:
    """Every .proto under protos/, sorted."""
    return sorted(PROTO_ROOT.rglob("*.proto"))


def mypy_grpc_plugin() -> Path:
    """The protoc-gen-mypy_grpc executable beside this interpreter's scripts."""
    plugin = Path(sysconfig.get_path("scripts")) / "protoc-gen-mypy_grpc"
    if not plugin.exists():
        raise RuntimeError(f"{plugin} is missing: install the test extras, `pip install -e '.[test]'`")
    return plugin


def generate(out_dir: Path) -> None:
    """Generates *_pb2.py, *_pb2.pyi, *_pb2_grpc.py and *_pb2_grpc.pyi for every proto into out_dir."""
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy_grpc={mypy_grpc_plugin()}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out=only_async,generate_concrete_servicer_stubs:{out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see the messages above")
    for package_dir in {p.parent for p in out_dir.rglob("*_pb2.py")}:
        for parent in [package_dir, *package_dir.parents]:
            if parent == out_dir or out_dir not in parent.parents:
                break
            (parent / "__init__.py").touch()


if __name__ == "__main__":
    generate(LIBS_ROOT)
    sys.exit(0)
