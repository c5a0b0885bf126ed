"""The Dagster UI on the committed sample, tested for real (issue 5 item 7).

``dagster dev`` is started on a fresh data root in its own session (process group), exactly as
``scripts/ui.sh`` starts it. Over GraphQL the test confirms that every asset, group, asset check,
job, sensor, schedule and partition set of ``spymaster_assets.definitions.defs`` loads, launches a
run that materializes one trading-day partition and waits for its success, then opens the Catalog
and the global asset lineage in Debian's Chromium (``scripts/ui_browser_check.mjs``, driven by
playwright-core) and saves screenshots under ``<data root>/reports/``, whose paths it prints.
The server's whole process group is stopped in the fixture's ``finally`` whatever happens.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and playwright-core
(``npm ci`` at the repository root); ``bash scripts/test.sh`` and CI install both. Without them the
browser test fails (it never skips) and says how to install them.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import AssetKey

from spymaster_assets.definitions import build_definitions

#: The UI's data root serves ES and GC (config.json "products"), so its code location holds both
#: graphs (spymaster_assets.product_graph.code_location_products): the definitions it must serve.
UI_PRODUCTS = ("ES", "GC")
defs = build_definitions(UI_PRODUCTS)

from servers import free_port, stop_process_group

REPO = Path(__file__).resolve().parents[2]
SAMPLE_RAW = REPO / "data" / "sample" / "raw"
BROWSER_CHECK = REPO / "scripts" / "ui_browser_check.mjs"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
INSTALL_HINT = (
    "install the browser test's tools: `apt-get install -y chromium` (Debian's Chromium at /usr/bin/chromium; "
    "set CHROMIUM_PATH for another path), Node.js >= 20, and `npm ci` at the repository root (playwright-core); "
    "`bash scripts/test.sh` does both as root"
)

#: The sample's first session, and a Saturday (no CME session) a few days later.
SESSION = "2013-10-07"
WEEKEND_DAY = "2013-10-12"
#: What the test materializes through the UI: the raw DBN files -> bronze -> the session's silver bars and
#: levels. Enough to exercise the run launcher, the daemon, the resource and the lake; the whole chain
#: for one session is covered in process by tests/test_chain.py.
MATERIALIZE = ["bronze_definitions", "bronze_futures_ohlcv_1m", "silver_bars", "silver_levels"]

SERVER_START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 120
BROWSER_TIMEOUT_S = 120
STOP_GRACE_S = 10


@dataclass(frozen=True)
class UiServer:
    """A running ``dagster dev``: its base URL, data root and log file."""

    url: str
    home: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """POST a GraphQL query to ``/graphql`` and return its ``data``; GraphQL errors fail the test."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log (for failure messages)."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _wait_until_loaded(server: UiServer, process: subprocess.Popen) -> None:
    """Wait until the webserver answers and the code location has loaded; fail on a load error or exit."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    status = "webserver not answering"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode} before serving:\n{server.log_tail()}")
        try:
            entries = server.graphql(
                """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                     locationOrLoadError { __typename ... on PythonError { message stack } } } } } }"""
            )["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
            continue
        for entry in entries:
            error = entry["locationOrLoadError"]
            if error and error["__typename"] == "PythonError":
                pytest.fail(f"code location {entry['name']} failed to load: {error['message']}\n{''.join(error['stack'])}")
        status = ", ".join(f"{entry['name']}: {entry['loadStatus']}" for entry in entries) or "no code location"
        if entries and all(entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"] for entry in entries):
            return
        time.sleep(0.5)
    pytest.fail(f"dagster dev not ready after {SERVER_START_TIMEOUT_S} s ({status}):\n{server.log_tail()}")


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory) -> UiServer:
    """``dagster dev`` on a fresh data root holding the committed sample; stopped by process group at the end."""
    home = tmp_path_factory.mktemp("ui_home")
    shutil.copytree(SAMPLE_RAW, home / "raw")
    shutil.copytree(REPO / "data" / "sample" / "GC" / "raw", home / "raw" / "GC")  # GC's daily files share ES's names
    (home / "config.json").write_text(json.dumps({"products": list(UI_PRODUCTS)}))
    dagster_home = home / ".dagster"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")  # as scripts/ui.sh does
    port = free_port()
    server = UiServer(url=f"http://127.0.0.1:{port}", home=home, log=home / "dagster_dev.log")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "SPYMASTER_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    with server.log.open("wb") as log:
        # start_new_session: dagster dev, its webserver, daemon, code server and run workers share one
        # process group that the finally block stops as a whole.
        process = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_loaded(server, process)
        yield server
    finally:
        stop_process_group(process, STOP_GRACE_S)


def _expected_definitions() -> dict:
    """What ``defs`` holds: asset keys -> group, partitioned or not, asset checks, jobs, sensors, schedules."""
    graph = defs.resolve_asset_graph()
    repository = defs.get_repository_def()
    assets = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    return {
        "repository": repository,
        "groups": {name: node.group_name for name, node in assets.items()},
        "partitioned": {name: node.partitions_def is not None for name, node in assets.items()},
        "checks": {(check.asset_key.to_user_string(), check.name) for check in graph.asset_check_keys},
        "jobs": {job.name for job in repository.get_all_jobs()},
        "sensors": {sensor.name for sensor in repository.sensor_defs},
        "schedules": {schedule.name for schedule in repository.schedule_defs},
    }


def _repository(server: UiServer) -> dict:
    data = server.graphql(
        """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
             ... on RepositoryLocation { name repositories { name
               jobs { name isAssetJob } assetGroups { groupName } sensors { name } schedules { name } } } } } } } }"""
    )
    repositories = [
        {**repository, "location": entry["name"]}
        for entry in data["workspaceOrError"]["locationEntries"]
        for repository in entry["locationOrLoadError"]["repositories"]
    ]
    assert len(repositories) == 1, f"expected the one spymaster repository, got {[r['name'] for r in repositories]}"
    return repositories[0]


def test_every_asset_group_check_job_and_partition_set_loads_over_graphql(ui_server: UiServer):
    expected = _expected_definitions()
    repository = _repository(ui_server)
    assert repository["name"] == expected["repository"].name

    nodes = ui_server.graphql(
        """{ assetNodes { assetKey { path } groupName isPartitioned
             assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }"""
    )["assetNodes"]
    served_groups = {"/".join(node["assetKey"]["path"]): node["groupName"] for node in nodes}
    assert served_groups == expected["groups"]
    assert {group["groupName"] for group in repository["assetGroups"]} == set(expected["groups"].values())
    assert {"/".join(node["assetKey"]["path"]): node["isPartitioned"] for node in nodes} == expected["partitioned"]
    for node in nodes:
        assert node["assetChecksOrError"]["__typename"] == "AssetChecks", node
    served_checks = {("/".join(node["assetKey"]["path"]), check["name"])
                     for node in nodes for check in node["assetChecksOrError"]["checks"]}
    assert served_checks == expected["checks"]

    assert {job["name"] for job in repository["jobs"]} == expected["jobs"]
    assert {sensor["name"] for sensor in repository["sensors"]} == expected["sensors"]
    assert {schedule["name"] for schedule in repository["schedules"]} == expected["schedules"]

    # Trading-day partitions of an asset, as the UI lists them: sessions only.
    asset_keys = ui_server.graphql(
        'query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { partitionKeys } } }',
        {"key": {"path": ["bronze_futures_ohlcv_1m"]}},
    )["assetNodeOrError"]["partitionKeys"]
    assert SESSION in asset_keys and "2013-10-14" in asset_keys  # a Monday; Columbus Day, CME open
    assert WEEKEND_DAY not in asset_keys and "2013-12-25" not in asset_keys
    graph = defs.resolve_asset_graph()
    assert asset_keys == graph.get(AssetKey("bronze_futures_ohlcv_1m")).partitions_def.get_partition_keys()
    # The second product's assets carry the same trading-day partitions (one partition set for every product).
    gc_keys = ui_server.graphql(
        'query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { partitionKeys groupName } } }',
        {"key": {"path": ["gc", "bronze_futures_ohlcv_1m"]}},
    )["assetNodeOrError"]
    assert gc_keys["groupName"] == "gc_bronze" and gc_keys["partitionKeys"] == asset_keys

    # Every partitioned job has its partition set, with the job's partitions.
    selector = {"repositoryLocationName": repository["location"], "repositoryName": repository["name"]}
    partitioned_jobs = {job.name: job.partitions_def for job in expected["repository"].get_all_jobs() if job.partitions_def}
    assert partitioned_jobs, "no partitioned job: the trading-day partitions are not in the definitions"
    for job_name, partitions_def in partitioned_jobs.items():
        sets = ui_server.graphql(
            """query($repo: RepositorySelector!, $job: String!) { partitionSetsOrError(repositorySelector: $repo, pipelineName: $job) {
                 __typename ... on PartitionSets { results { name } } ... on PythonError { message } } }""",
            {"repo": selector, "job": job_name},
        )["partitionSetsOrError"]
        assert sets["__typename"] == "PartitionSets" and len(sets["results"]) == 1, (job_name, sets)
        partitions = ui_server.graphql(
            """query($repo: RepositorySelector!, $name: String!) { partitionSetOrError(repositorySelector: $repo, partitionSetName: $name) {
                 __typename ... on PartitionSet { partitionsOrError { __typename ... on Partitions { results { name } } } } } }""",
            {"repo": selector, "name": sets["results"][0]["name"]},
        )["partitionSetOrError"]["partitionsOrError"]
        assert partitions["__typename"] == "Partitions", (job_name, partitions)
        assert [p["name"] for p in partitions["results"]] == partitions_def.get_partition_keys(), job_name


def _run_failure_report(server: UiServer, run_id: str) -> str:
    events = server.graphql(
        """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection { events { __typename
             ... on ExecutionStepFailureEvent { stepKey error { message errorChain { error { message } } } }
             ... on RunFailureEvent { message } ... on EngineEvent { message error { message } } } } } }""",
        {"id": run_id},
    )["logsForRun"]
    lines = []
    for event in events.get("events", []):
        if event["__typename"] == "ExecutionStepFailureEvent":
            chain = " <- ".join(link["error"]["message"].strip() for link in event["error"]["errorChain"])
            lines.append(f"step {event['stepKey']}: {event['error']['message'].strip()} {chain}")
        elif event["__typename"] == "RunFailureEvent" or (event["__typename"] == "EngineEvent" and event.get("error")):
            lines.append(f"{event['__typename']}: {event['message']}")
    return "\n".join(lines) or json.dumps(events)[:2000]


@pytest.mark.parametrize("prefix", [[], ["gc"]], ids=["ES", "GC"])
def test_materialize_one_session_from_the_ui(ui_server: UiServer, prefix: list[str]):
    """A session of ES, and one of the second product (GC: keys gc/..., its lake under product=GC/)."""
    repository = _repository(ui_server)
    keys = [AssetKey([*prefix, name]) for name in MATERIALIZE]
    job_name = defs.get_repository_def().get_implicit_job_def_for_assets(keys).name
    checks = [check for check in defs.resolve_asset_graph().asset_check_keys if check.asset_key in keys]
    params = {
        "selector": {
            "repositoryLocationName": repository["location"],
            "repositoryName": repository["name"],
            "jobName": job_name,
            "assetSelection": [{"path": key.path} for key in keys],
            "assetCheckSelection": [{"assetKey": {"path": c.asset_key.path}, "name": c.name} for c in checks],
        },
        # One process for the whole run: the default multiprocess executor spends ~10 s starting a
        # Python per step on this 2-core machine.
        "runConfigData": {"execution": {"config": {"in_process": {}}}},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": SESSION}]},
    }
    launched = ui_server.graphql(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
             ... on LaunchRunSuccess { run { id } } ... on PythonError { message }
             ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }""",
        {"params": params},
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["id"]

    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        status = ui_server.graphql('query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }', {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS", f"run {run_id} ended {status}:\n{_run_failure_report(ui_server, run_id)}\n{ui_server.log_tail()}"

    for key in keys:
        materializations = ui_server.graphql(
            """query($key: AssetKeyInput!, $partition: String!) { assetNodeOrError(assetKey: $key) {
                 ... on AssetNode { groupName assetMaterializations(partitions: [$partition]) { partition runId } } } }""",
            {"key": {"path": key.path}, "partition": SESSION},
        )["assetNodeOrError"]
        assert {"partition": SESSION, "runId": run_id} in materializations["assetMaterializations"], key
        # The lake holds the session, and only it, for each asset (tier = group, gc_bronze for GC's).
        lake = ui_server.home / "lake" / (f"product={prefix[0].upper()}" if prefix else "")
        table_dir = lake / materializations["groupName"].rsplit("_", 1)[-1] / key.path[-1]
        assert sorted(p.name for p in table_dir.iterdir() if p.name.startswith("date=")) == [f"date={SESSION}"], key
        assert (table_dir / f"date={SESSION}" / "part-0.parquet").stat().st_size > 0

    for check in checks:
        executions = ui_server.graphql(
            """query($key: AssetKeyInput!, $name: String!) { assetCheckExecutions(assetKey: $key, checkName: $name, limit: 5) {
                 runId status } }""",
            {"key": {"path": check.asset_key.path}, "name": check.name},
        )["assetCheckExecutions"]
        assert any(execution["runId"] == run_id for execution in executions), (check, executions)


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def _missing_browser_tools() -> list[str]:
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"no Chromium at {CHROMIUM}")
    node = shutil.which("node")
    if node is None:
        missing.append("no `node` on PATH")
    else:
        found = subprocess.run([node, "-e", "require.resolve('playwright-core')"], cwd=REPO, capture_output=True, timeout=30)
        if found.returncode != 0:
            missing.append(f"playwright-core not in {REPO / 'node_modules'}")
    return missing


def test_lineage_page_renders_in_chromium(ui_server: UiServer, capsys):
    missing = _missing_browser_tools()
    if missing:
        pytest.fail(f"the Dagster UI browser test cannot run: {'; '.join(missing)}. To fix, {INSTALL_HINT}.")
    expected = _expected_definitions()
    reports = ui_server.home / "reports"
    command = [
        shutil.which("node"), str(BROWSER_CHECK), "--url", ui_server.url, "--out-dir", str(reports),
        "--assets", ",".join(sorted(expected["groups"])), "--groups", ",".join(sorted(set(expected["groups"].values()))),
        "--chromium", str(CHROMIUM), "--timeout-ms", "60000",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    lines = result.stdout.strip().splitlines()
    assert lines, f"ui_browser_check.mjs printed nothing (exit {result.returncode}):\n{result.stderr}"
    report = json.loads(lines[-1])
    assert result.returncode == 0 and report["ok"], f"browser check failed: {report}\n{result.stderr[-3000:]}"

    assert report["lineage_nodes"] == len(expected["groups"])
    # Uncaught exceptions in the UI's JavaScript are failures; ResizeObserver notices are not.
    assert [e for e in report["page_errors"] if "ResizeObserver" not in e] == []
    lineage, catalog = Path(report["lineage_screenshot"]), Path(report["catalog_screenshot"])
    # At device scale factor 2: a 3840 x 2400 window for a graph of more than 30 assets (two products), else 1920 x 1200 (see ui_browser_check.mjs).
    assert lineage.parent == reports and _png_size(lineage) == ((7680, 4800) if len(expected["groups"]) > 30 else (3840, 2400))
    assert _png_size(catalog)[0] == 3840
    with capsys.disabled():
        print(f"\nDagster UI screenshots: lineage {lineage}  catalog {catalog}")


def test_backfill_of_two_sessions_from_the_ui_runs_them_in_order(ui_server: UiServer):
    """Issues 5 and 10: a backfill of many sessions runs from the UI. The job's partition backfill (what
    *Jobs -> materialize_session_job -> Partitions -> Launch backfill* sends) is one run for the range
    (every asset has ``BackfillPolicy.single_run()``), bronze to gold, gold walked in date order."""
    repository = _repository(ui_server)
    sessions = ["2013-10-08", "2013-10-09"]
    launched = ui_server.graphql(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) { __typename
             ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
        {
            "params": {
                "selector": {
                    "partitionSetName": "materialize_session_job_partition_set",
                    "repositorySelector": {"repositoryLocationName": repository["location"], "repositoryName": repository["name"]},
                },
                "partitionNames": sessions,
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    deadline = time.monotonic() + 3 * RUN_TIMEOUT_S
    results: list[dict] = []
    while time.monotonic() < deadline:
        backfill = ui_server.graphql(
            """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
                 status partitionStatuses { results { partitionName runId runStatus } } } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]
        results = (backfill.get("partitionStatuses") or {}).get("results") or []
        done = [r for r in results if r["runStatus"] in ("SUCCESS", "FAILURE", "CANCELED")]
        if len(done) == len(sessions):
            break
        time.sleep(2)
    by_session = {r["partitionName"]: r for r in results}
    assert sorted(by_session) == sessions, results
    for session in sessions:
        run = by_session[session]
        assert run["runStatus"] == "SUCCESS", f"{session}: {run}\n{_run_failure_report(ui_server, run['runId'])}"
        assert (ui_server.home / "lake" / "gold" / "gold_signals" / f"date={session}" / "part-0.parquet").is_file()
        assert (ui_server.home / "reports" / f"session_{session}.png").is_file()
    # One run for the range, not one per session.
    assert len({by_session[s]["runId"] for s in sessions}) == 1, results
    # The gold as-of tables walked the range in date order (session D's gold reads D-1's); gold_episodes
    # is per session, built in the process pool in any order, and so are gold_evaluation's days once
    # their sums are written (a CI run saw its two partitions land 4 ms apart in reverse order).
    gold = ui_server.home / "lake" / "gold"
    for table in ("gold_normalization", "gold_signals"):
        written = [(gold / table / f"date={s}" / "part-0.parquet").stat().st_mtime_ns for s in sessions]
        assert written == sorted(written), (table, written)
