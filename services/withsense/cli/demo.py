"""`withsense demo`: worker and gateway in this process, an embedded store, a gallery indexed and
sample queries run against it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

from withsense.cli.client import index, search
from withsense.cli.output import console, print_index, print_json, print_search
from withsense.cli.serve import run_or_explain

DEMO_QUERIES = [
    "A man is crossing a mountain pass on a metal bridge",
    "a cup of coffee on a table",
    "a rocket before launch",
    "a cat",
    "the starry night sky",
    "a little girl playing in the park",
]


def cmd_demo(args) -> int:
    return run_or_explain(_demo(args))


async def _demo(args) -> None:
    from withsense.cli.stack import start_stack
    from withsense.gallery import write_gallery
    from withsense.rpc import wait_for_signal

    with tempfile.TemporaryDirectory(prefix="withsense-demo-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        folder, descriptions_file = args.images, args.descriptions
        if folder is None:
            folder = Path(tmp) / "gallery"
            _write_descriptions_csv(write_gallery(folder), Path(tmp) / "descriptions.csv")
            descriptions_file = Path(tmp) / "descriptions.csv"
        if not args.json:
            console.print("[bold]With Sense search demo[/bold]: loading the model …")
        stack = await start_stack(data_dir=data_dir, gateway_port=args.port if args.serve else 0)
        try:
            index_args = SimpleNamespace(folder=folder, descriptions=descriptions_file, json=args.json)
            report = await index(index_args, stack.target)
            if not args.json:
                console.print(f"model {stack.gateway.engine.model_version}; gallery {folder}")
                print_index(report)
            results = []
            for query in args.query or DEMO_QUERIES:
                search_args = SimpleNamespace(target=stack.target, tls_ca=None, query=query,
                                         top_k=args.top_k, region=args.region, min_score=0.0,
                                         filter=[], api_key=None)
                result = await search(search_args)
                results.append(result)
                if not args.json:
                    print_search(result)
            if args.json:
                print_json({"index": report, "searches": results})
            if args.serve:
                console.print(f"serving on {stack.target}: try `withsense search 'a cat' "
                              f"--target {stack.target}`; Ctrl-C stops")
                await wait_for_signal()
        finally:
            await stack.stop()


def _write_descriptions_csv(descriptions: dict[str, list[str]], path: Path) -> None:
    import csv

    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "description"])
        for image, texts in descriptions.items():
            for text in texts:
                writer.writerow([image, text])
