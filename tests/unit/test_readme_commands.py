"""Every command in README "From laptop to cluster" is one a test runs or a validator checks.

The commands are read from the section's fenced code blocks (backslash continuations joined,
comments dropped, `&&` chains split). Each must match one row of COVERED, whose test must
exist; a command no row covers fails, and so does a row no command uses any more. The repo
paths a command names must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

SECTION = "## From laptop to cluster"
MANIFESTS = "tests/integration/test_manifests.py"
DDP = "tests/integration/test_ddp.py"

# command pattern (whole command) -> the test that runs it or validates what it uses
COVERED: dict[str, str] = {
    r"docker build -f infra/docker/Containerfile( --build-arg TORCH_VARIANT=\w+)? "
    r"-t flywheel-worker:\w+ \.": f"{MANIFESTS}::"
    "test_containerfile_builds_from_files_that_exist_and_the_locked_torch",
    r"cp infra/compose/\.env\.example infra/compose/\.env": (
        f"{MANIFESTS}::test_compose_names_only_what_exists"
    ),
    r"docker compose -f infra/compose/compose\.yaml up -d": (
        f"{MANIFESTS}::test_compose_file_matches_the_compose_specification"
    ),
    r"kubectl -n flywheel create secret generic flywheel-services( --from-literal=\S+)+": (
        f"{MANIFESTS}::test_readme_secret_holds_every_key_the_manifests_read"
    ),
    r"kubectl apply -k infra/k8s/overlays/\w+": (
        f"{MANIFESTS}::test_rendered_overlay_matches_the_kubernetes_schemas"
    ),
    r"kubectl apply -k infra/k8s/training": (
        f"{MANIFESTS}::test_training_job_matches_the_kubernetes_schemas"
    ),
    r"kubectl apply -k infra/k8s/dask": (
        f"{MANIFESTS}::test_dask_manifests_match_the_kubernetes_schemas"
    ),
    r"prefect work-pool create \w+ --type kubernetes "
    r"--base-job-template infra/prefect/k8s(-gpu)?-job-template\.json": (
        f"{MANIFESTS}::test_job_template_is_accepted_by_prefect_kubernetes"
    ),
    r"flywheel step train": f"{DDP}::test_two_gloo_ranks_match_one_process",
    r"torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=HOST:\d+ "
    r"--max-restarts=0 -m flywheel\.cli step train": (
        f"{DDP}::test_two_nodes_under_torchrun_rendezvous_match_one_process"
    ),
}


def section_commands(readme: str) -> list[str]:
    """The shell commands in the section's fenced code blocks."""
    readme = f"\n{readme}"  # the section may open the text
    start = readme.index(f"\n{SECTION}\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end != -1 else None]
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            commands += [part.strip() for part in line.split("&&") if part.strip()]
    return [" ".join(command.split()) for command in commands]


def node_exists(node_id: str) -> bool:
    path, name = node_id.split("::")
    file = REPO / path
    return file.is_file() and re.search(rf"^def {name}\(", file.read_text(), re.M) is not None


def test_every_command_in_the_section_is_tested() -> None:
    commands = section_commands((REPO / "README.md").read_text())
    assert len(commands) >= len(COVERED)
    used = set()
    for command in commands:
        rows = [p for p in COVERED if re.fullmatch(p, command)]
        assert len(rows) == 1, f"README command not mapped to one test: {command}"
        used.add(rows[0])
        named = command.split()[:-1] if command.startswith("cp ") else command.split()
        for token in named:  # every path but what a cp creates
            path = token.split("=")[-1]
            if path.startswith("infra/"):
                assert (REPO / path).exists(), f"{command}: {path} does not exist"
    assert used == set(COVERED), f"rows no README command uses: {set(COVERED) - used}"


def test_every_mapped_test_exists() -> None:
    missing = [node for node in COVERED.values() if not node_exists(node)]
    assert not missing


def test_an_unknown_command_is_caught() -> None:
    readme = f"{SECTION}\n\n```bash\nflywheel step train\nkubectl delete ns flywheel\n```\n"
    commands = section_commands(readme)
    assert commands == ["flywheel step train", "kubectl delete ns flywheel"]
    assert not any(re.fullmatch(p, commands[1]) for p in COVERED)


def test_continuations_comments_and_chains_are_split(tmp_path: Path) -> None:
    readme = f"{SECTION}\n```bash\na \\\n  --b  # note\nc && d\n```\n## Next\n```bash\ne\n```\n"
    assert section_commands(readme) == ["a --b", "c", "d"]
