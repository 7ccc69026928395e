"""`withsense store verify|snapshot|restore`: the embedded store's integrity, offline.

Run with the gateway stopped (the engine locks its folder). With `WITHSENSE_QDRANT_URL` set,
`snapshot` and `restore` use the Qdrant server's own snapshots instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `store` subcommand's parser (imports nothing heavy: the CLI's --help stays fast)."""
    store = sub.add_parser("store", help="verify, snapshot or restore the vector store")
    actions = store.add_subparsers(dest="store_action", required=True)
    verify = actions.add_parser("verify", help="check the embedded store against its catalogue")
    verify.add_argument("--adopt", action="store_true",
                        help="record the store as it is in a new catalogue (trust it)")
    verify.add_argument("--full", action="store_true",
                        help="read every point, even when the store is sealed (the gateway's "
                        "start-up check then reads only a sample)")
    snapshot = actions.add_parser("snapshot", help="write a verified snapshot of the store")
    snapshot.add_argument("file", type=Path, help="the snapshot (.tar.gz) to write")
    restore = actions.add_parser("restore", help="replace the store by a verified snapshot")
    restore.add_argument("file", help="snapshot file (embedded) or URL / server path (Qdrant)")
    for parser in (verify, snapshot, restore):
        parser.add_argument("--data-dir", type=Path, help="data folder (WITHSENSE_DATA_DIR)")
        parser.add_argument("--dim", type=int, default=None,
                            help="vector size (default: as recorded in the store, else 384)")
        parser.add_argument("--json", action="store_true")
    return store


def run(args: argparse.Namespace) -> int:
    from withsense.cli.output import err_console
    from withsense.config import GatewaySettings
    from withsense.store import StoreError

    settings = GatewaySettings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    try:
        if settings.qdrant_url.strip():
            return _server(args, settings)
        return _embedded(args, settings.data_dir)
    except StoreError as error:
        err_console.print(f"[red]error[/red]: {error}")
        return 1


def _embedded(args: argparse.Namespace, data_dir: Path) -> int:
    from withsense.store.edge import stored_dim
    from withsense.store.snapshots import restore, snapshot
    from withsense.store.verified import open_catalogued, remedy

    dim = args.dim or stored_dim(data_dir / "store") or 384
    if args.store_action == "verify":
        store = open_catalogued(data_dir, dim)
        try:
            report = store.verify(adopt=args.adopt, full=args.full)
        finally:
            store.close()
        out = report.to_dict()
        if not report.ok:
            out["what_to_do"] = remedy(store.path, store.catalogue.path)
        how = (f"sealed, {report.sampled} sampled points checked" if report.mode == "sealed"
               else "every point checked")
        _show(args, out, f"store intact ({report.images} images, {how})" if report.ok
              else "store DAMAGED: " + "; ".join(report.problems()))
        return 0 if report.ok else 1
    if args.store_action == "snapshot":
        report = snapshot(data_dir, dim, args.file)
        _show(args, {"snapshot": str(args.file), **report.to_dict()},
              f"snapshot of {report.images} images written to {args.file}")
        return 0
    report, aside = restore(data_dir, dim, Path(args.file))
    _show(args, {"restored": str(args.file), "replaced_store_kept_in": str(aside or ""),
                 **report.to_dict()},
          f"restored {report.images} images" + (f"; the replaced store is in {aside}" if aside else ""))
    return 0


def _server(args: argparse.Namespace, settings) -> int:
    from withsense.cli.output import err_console
    from withsense.store.snapshots import server_restore, server_snapshot

    url, collection, key = settings.qdrant_url.strip(), settings.qdrant_collection, settings.qdrant_api_key
    if args.store_action == "verify":
        err_console.print("verify checks the embedded store; a Qdrant server keeps its own "
                          "write-ahead log and replicas")
        return 2
    if args.store_action == "snapshot":
        name = server_snapshot(url, collection, key)
        _show(args, {"snapshot": name, "server": url}, f"snapshot {name} made on {url}")
        return 0
    server_restore(url, collection, args.file, key)
    _show(args, {"restored": args.file, "server": url}, f"{collection} restored from {args.file}")
    return 0


def _show(args: argparse.Namespace, data: dict, text: str) -> None:
    from withsense.cli.output import console, print_json

    if args.json:
        print_json(data)
    else:
        console.print(text)
