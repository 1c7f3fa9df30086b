"""MkDocs hook: publish the measured results beside the pages that quote them.

benchmarks/results/ and results/ hold the JSON, Markdown tables and plots that the commands in the docs write.
They stay where the commands write them; this hook adds them to the site under the same paths, so a page links
to `../benchmarks/results/x.png` and the strict build checks that the file exists.
"""

from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ("benchmarks/results", "results")


def on_files(files, config):
    for folder in PUBLISHED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file():
                file = File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                            config["use_directory_urls"], inclusion=InclusionLevel.NOT_IN_NAV)
                files.append(file)
    return files
