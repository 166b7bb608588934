"""Bearer tokens by scope: who may predict, who may label, who may administer.

Three scopes, each with its own secret, so that a client allowed to ask for predictions cannot
teach the monitoring false labels (label poisoning starts retraining):

- `predict` (`/predict`, `/predict_batch`, `/metadata`): `FLYWHEEL_API_TOKEN`. Unset means
  open, which `flywheel serve` allows on loopback only.
- `feedback` (`/feedback`): `FLYWHEEL_FEEDBACK_TOKEN`, else the project's local token file.
- `admin` (alerts, reloads, any other state-changing route): `FLYWHEEL_ADMIN_TOKEN`, else the
  local token file. An admin token is accepted for every scope.

Feedback and admin always need a token, loopback included. So that the first hour stays one
command, a missing local token is generated at first use into `.flywheel/tokens.json` (mode
0600, git-ignored; `FLYWHEEL_TOKENS_FILE` moves it), which the service, the CLI and the tests
all read. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from flywheel.errors import ConfigError
from flywheel.private_file import create_private, read_private

logger = logging.getLogger(__name__)

PREDICT, FEEDBACK, ADMIN = "predict", "feedback", "admin"
SCOPES = (PREDICT, FEEDBACK, ADMIN)
LOCAL_SCOPES = (FEEDBACK, ADMIN)  # the ones a generated local token stands in for
ENV_NAMES = {PREDICT: "FLYWHEEL_API_TOKEN", FEEDBACK: "FLYWHEEL_FEEDBACK_TOKEN",
             ADMIN: "FLYWHEEL_ADMIN_TOKEN"}
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class ScopeTokens:
    """The secret of each scope; `predict` may be None (open)."""

    predict: str | None
    feedback: str
    admin: str

    def allows(self, scope: str, presented: bytes) -> bool:
        """Whether `presented` (the raw Authorization header) grants `scope`, in constant time.

        Every candidate is compared (no early exit), so the time taken does not tell which
        scope's token a guess came close to.
        """
        wanted = [self.admin] + ([] if scope == ADMIN else [getattr(self, scope)])
        granted = False
        for token in wanted:
            if token is not None:
                granted |= hmac.compare_digest(presented, f"Bearer {token}".encode())
        return granted

    def is_open(self, scope: str) -> bool:
        return scope == PREDICT and self.predict is None


def scope_tokens(root: Path, tokens_file: Path | None = None,
                 env: dict[str, str] | None = None) -> ScopeTokens:
    """Each scope's token: its environment variable, else the local file (created if absent)."""
    env = dict(os.environ) if env is None else env
    given = {scope: env.get(ENV_NAMES[scope]) or None for scope in SCOPES}
    local = {} if all(given[s] for s in LOCAL_SCOPES) else local_tokens(
        tokens_path(root, tokens_file))
    tokens = ScopeTokens(predict=given[PREDICT], feedback=given[FEEDBACK] or local[FEEDBACK],
                         admin=given[ADMIN] or local[ADMIN])
    _check_distinct(tokens)
    return tokens


def tokens_path(root: Path, tokens_file: Path | None = None) -> Path:
    path = tokens_file or Path(".flywheel/tokens.json")
    return path if path.is_absolute() else root / path


def local_tokens(path: Path) -> dict[str, str]:
    """The local tokens in `path`, generating the file (0600) if it does not exist yet.

    Creation is atomic and first-writer-wins (a hard link of a finished temp file), so workers
    and a CLI starting at the same moment all end up with the same tokens.
    """
    fresh = {scope: secrets.token_urlsafe(32) for scope in LOCAL_SCOPES}
    if create_private(path, json.dumps(fresh, indent=2)):
        logger.info("generated local feedback and admin tokens in %s", path)
    text = read_private(path, "token")
    try:
        stored = json.loads(text)
        return {scope: _valid(stored[scope], f"{path}: {scope!r}") for scope in LOCAL_SCOPES}
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a token file (expected a JSON object with string "
                          f"fields {', '.join(LOCAL_SCOPES)}); delete it to generate a new "
                          "one") from None


def _valid(token: object, where: str) -> str:
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
        raise ValueError(where)
    return token


def _check_distinct(tokens: ScopeTokens) -> None:
    """One secret for two scopes would let a predict client label: refuse at start."""
    for scope in (FEEDBACK, ADMIN):
        if tokens.predict is not None and getattr(tokens, scope) == tokens.predict:
            raise ConfigError(f"{ENV_NAMES[scope]} equals FLYWHEEL_API_TOKEN: give each scope "
                              "its own token (a predict client could otherwise "
                              f"{'label' if scope == FEEDBACK else 'administer'})")
