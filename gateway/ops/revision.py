"""A config as it is in a directory, or as it was at a git revision, compiled for review.

`gateway diff` compares two of these. Both are compiled by `build_snapshot`, like the
server does, but with placeholders for `${VAR}`s that are unset: a review runs where the
secrets are not, and a missing secret must not hide what a change does.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.config.load import ConfigError, ConfigIssue, env_with_placeholders
from gateway.config.snapshot import Snapshot
from gateway.providers.snapshots import build_snapshot


class RevisionError(Exception):
    """The config cannot be found (no such directory, file or git revision)."""


def compile_side(path: str | os.PathLike[str], routes: str, providers: str) -> Snapshot:
    """One side of `gateway diff`: a config directory, or a routes file with the providers
    file of that name beside it (`gateway diff old/routes.yaml new/routes.yaml`)."""
    given = Path(path)
    if given.is_file():
        return compile_dir(given.parent, given.name, providers)
    return compile_dir(given, routes, providers)


def compile_dir(directory: str | os.PathLike[str], routes: str, providers: str) -> Snapshot:
    """The config in `directory` (file names relative to it); `ConfigError` when invalid."""
    base = Path(directory)
    if not base.is_dir():
        raise RevisionError(f"{directory}: no such directory or file (gateway diff compares two config "
                            "directories, or two routes files each with its providers.yaml beside it)")
    routes_path, providers_path = base / routes, base / providers
    for path in (routes_path, providers_path):
        if not path.is_file():
            raise RevisionError(f"{path}: no such file")
    return build_snapshot(routes_path, providers_path, env_with_placeholders([routes_path, providers_path]))


@contextmanager
def compiled_at(ref: str, directory: str | os.PathLike[str], routes: str, providers: str) -> Iterator[Snapshot]:
    """The config at git revision `ref`, for the files that `directory/routes` etc. name now.

    The files (and the pack files providers.yaml names) are copied out of git into a
    temporary directory that lives as long as the context, since a diff reads pack files.
    Issues are reported as `REF:path:line:col`.
    """
    from gateway.config.reload import config_files

    with tempfile.TemporaryDirectory(prefix="gateway-diff-") as tmp:
        for name in (routes, providers):
            _export(ref, directory, name, Path(tmp))
        files = config_files(str(Path(tmp, routes)), str(Path(tmp, providers)))
        for pack in files[2:]:
            relative = os.path.relpath(pack, tmp)
            if not relative.startswith(".."):
                try:
                    _export(ref, directory, relative, Path(tmp))
                except RevisionError:
                    pass  # reported by the compiler at the line that names it
        try:
            yield compile_dir(tmp, routes, providers)
        except ConfigError as exc:
            raise ConfigError([_relabel(issue, tmp, ref) for issue in exc.issues]) from None


def _export(ref: str, directory: str | os.PathLike[str], name: str, into: Path) -> None:
    try:
        content = subprocess.run(
            ["git", "-C", str(directory), "show", f"{ref}:./{name}"],
            check=True, capture_output=True, timeout=30,
        ).stdout
    except FileNotFoundError:
        raise RevisionError("git is not installed") from None
    except subprocess.CalledProcessError as exc:
        reason = exc.stderr.decode(errors="replace").strip().splitlines()
        raise RevisionError(f"{ref}:{name}: {reason[-1] if reason else 'not found'}") from None
    target = into / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def _relabel(issue: ConfigIssue, tmp: str, ref: str) -> ConfigIssue:
    if not issue.file.startswith(tmp):
        return issue
    return ConfigIssue(f"{ref}:{os.path.relpath(issue.file, tmp)}", issue.line, issue.col, issue.message)
