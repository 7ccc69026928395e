"""Regenerate the gRPC stubs from proto/ into services/withsense/v1/.

The generated files are committed; tests/test_protos.py checks that they match this script's
output, so edit the .proto files and rerun: `python scripts/gen_protos.py`.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "services"


def generate(out_dir: Path) -> list[Path]:
    """Runs protoc on every .proto under proto/ into out_dir; returns the written files."""
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in (out_dir / "withsense" / "v1").glob("*_pb2*.py*"))


def main() -> None:
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = generate(Path(tmp))
            stale = [p.name for p in fresh
                     if (OUT_DIR / "withsense" / "v1" / p.name).read_text() != p.read_text()]
        if stale:
            raise SystemExit(f"generated stubs are stale: {stale}; run python scripts/gen_protos.py")
        print("generated stubs are up to date")
        return
    for path in generate(OUT_DIR):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
