"""`aidflow up` as a user runs it: real dev server, Web UI, worker, restart, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from models import search
from models.programmes import BUILTIN_PROGRAMMES
from store.calendars import build_calendar
from store.sealing import Keys
from tests.conftest import Registry
from tests.support import IN_WINDOW_2027, VENV_BIN, form, free_port
from workers.client import AidflowClient

SECRET = "ab" * 32


def _env(data_dir: Path, grpc: int, ui: int, metrics: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDFLOW_")}
    env.update(
        AIDFLOW_DATA_DIR=str(data_dir),
        AIDFLOW_GRPC_PORT=str(grpc),
        AIDFLOW_UI_PORT=str(ui),
        AIDFLOW_METRICS_PORT=str(metrics),
        AIDFLOW_API_PORT=str(free_port()),
        AIDFLOW_TEMPORAL_ADDRESS=f"127.0.0.1:{grpc}",
        AIDFLOW_SECRET_KEY=SECRET,
        AIDFLOW_LOG_FORMAT="json",
    )
    return env


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.data_dir = tmp / "data"
        self.grpc, self.ui, self.metrics = free_port(), free_port(), free_port()
        self.env = _env(self.data_dir, self.grpc, self.ui, self.metrics)
        self.proc: subprocess.Popen[str] | None = None
        self.out = tmp / "up.out"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "aidflow"), "up"],
            env=self.env,
            cwd=self.data_dir.parent,
            stdout=open(self.out, "w"),  # noqa: SIM115 - the child keeps it
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "aidflow is up" in self.out.read_text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"aidflow up exited {self.proc.returncode}: {self.out.read_text()}")
            time.sleep(0.2)
        pytest.fail(f"aidflow up did not come up: {self.out.read_text()}")

    def server_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-f", f"start-dev --db-filename {self.data_dir}"],
            capture_output=True,
            text=True,
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    if s.proc and s.proc.poll() is None:
        s.proc.kill()
    for pid in s.server_pids():
        os.kill(pid, signal.SIGKILL)


async def _client(stack: Stack) -> Client:
    return await Client.connect(f"127.0.0.1:{stack.grpc}", data_converter=pydantic_data_converter)


def test_up_serves_ui_registers_attributes_polls_and_survives_restart(stack: Stack) -> None:
    stack.start()
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ui}/", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics}/metrics", timeout=10) as r:
        assert b"temporal_" in r.read()
    # The HTTP API beside the worker (R10): its OpenAPI document, and no entry without a key.
    api = f"http://127.0.0.1:{stack.env['AIDFLOW_API_PORT']}"
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"{api}/openapi.json", timeout=10) as r:
                assert b"/v1/batches/decisions" in r.read()
            break
        except OSError:
            time.sleep(0.2)
    else:
        pytest.fail("the HTTP API did not answer")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{api}/v1/me", timeout=10)
    assert refused.value.code == 401
    assert (stack.data_dir / "aidflow.db").exists()

    async def first_run() -> str:
        client = await _client(stack)
        attrs = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        for key in search.ALL:
            assert key.name in attrs.custom_attributes, key.name
        # A worker polls the task queue (what the UI's task-queue page shows).
        pollers = []
        for _ in range(50):
            d = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name="aidflow"),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            pollers = list(d.pollers)
            if pollers:
                break
            await asyncio.sleep(0.2)
        assert pollers, "no worker polls the aidflow task queue"
        keys = Keys(bytes.fromhex(SECRET))
        registry = Registry(keys)
        registry.add(7, form(7).places.village_code)
        api = AidflowClient(
            client,
            task_queue="aidflow",
            keys=keys,
            calendar=build_calendar("state-council"),
            programmes=dict(BUILTIN_PROGRAMMES),
            lookup_member=registry.lookup,
        )
        wf = await api.submit(form(7), now=IN_WINDOW_2027)
        for _ in range(50):
            if (await api.status(wf)).stage == "village_review":
                break
            await asyncio.sleep(0.2)
        return wf

    wf = asyncio.run(first_run())
    assert stack.stop() == 0
    assert stack.server_pids() == [], "the dev server outlived aidflow up"
    assert "stopped." in stack.out.read_text()

    stack.start()

    async def second_run() -> None:
        client = await _client(stack)
        desc = await client.get_workflow_handle(wf).describe()
        assert desc.status is not None and desc.status.name == "RUNNING"
        assert desc.typed_search_attributes.get(search.STAGE) == "village_review"

    asyncio.run(second_run())
    assert stack.stop() == 0
    assert stack.server_pids() == []


def test_second_up_is_refused_in_one_line(stack: Stack) -> None:
    stack.start()
    second = subprocess.run(
        [str(VENV_BIN / "aidflow"), "up"], env=stack.env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert "Traceback" not in second.stderr + second.stdout
    assert len(second.stderr.strip().splitlines()) == 1
    assert stack.stop() == 0


def test_port_taken_is_refused_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path / "d", port, free_port(), free_port())
        r = subprocess.run(
            [str(VENV_BIN / "aidflow"), "up"], env=env, capture_output=True, text=True, timeout=60
        )
    assert r.returncode == 1
    assert f"port {port}" in r.stderr and "Traceback" not in r.stderr
    assert sys.executable  # the venv's own aidflow was used


def test_worker_refuses_an_unmigrated_database_in_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port(), free_port(), free_port())
    env["AIDFLOW_DATABASE_URL"] = f"sqlite:///{tmp_path / 'empty.db'}"
    r = subprocess.run(
        [str(VENV_BIN / "aidflow"), "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1
    assert "no aidflow schema yet: run `aidflow db upgrade`" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_worker_beside_a_taken_metrics_port_says_so(tmp_path: Path) -> None:
    """Beside a running `aidflow up` the worker's metrics port is taken: it said it
    could not connect to Temporal (issue 16); it names the port and the setting."""
    import socket

    from store.db import upgrade

    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, free_port(), free_port(), port)
        env["AIDFLOW_DATABASE_URL"] = url
        r = subprocess.run(
            [str(VENV_BIN / "aidflow"), "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    assert f"metrics port {port} is taken" in r.stderr and "AIDFLOW_METRICS_PORT" in r.stderr
    assert "cannot connect to Temporal" not in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_worker_pointed_at_another_database_refuses_to_start(
    stack: Stack, tmp_path: Path
) -> None:
    """Such a worker took the stack's tasks and wrote to the wrong database without a
    word (issue 16); the namespace records the stack's database, and it refuses."""
    from store.db import upgrade

    stack.start()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other)
    env = {**stack.env, "AIDFLOW_DATABASE_URL": other, "AIDFLOW_METRICS_PORT": ""}
    r = subprocess.run(
        [str(VENV_BIN / "aidflow"), "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "is not the one the namespace default's workers write" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # Its own database: it starts (and stops on SIGTERM).
    env["AIDFLOW_DATABASE_URL"] = f"sqlite:///{stack.data_dir / 'aidflow.db'}"
    worker = subprocess.Popen(
        [str(VENV_BIN / "aidflow"), "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None
    for line in worker.stdout:
        if "worker started" in line:
            break
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert stack.stop() == 0


def test_sigterm_while_starting_leaves_no_server_behind(stack: Stack) -> None:
    """`aidflow up` stopped while its dev server was starting exited before the server
    did (issue 16): now it stops the server, waits for it, and only then exits."""
    stack.proc = subprocess.Popen(
        [str(VENV_BIN / "aidflow"), "up"],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not stack.server_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.server_pids(), "the dev server never started"
    stack.proc.send_signal(signal.SIGTERM)
    out, _ = stack.proc.communicate(timeout=60)
    assert stack.proc.returncode == 0, out
    assert "Traceback" not in out
    assert stack.server_pids() == [], "aidflow up exited before its Temporal server"


def _config_show(env: dict[str, str], cwd: Path | None = None) -> str:
    """``aidflow config show --json`` with ``env``: its output (it must succeed)."""
    r = subprocess.run(
        [str(VENV_BIN / "aidflow"), "config", "show", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = _env(tmp_path, 7233, 8233, 9464)
    env["AIDFLOW_DATABASE_URL"] = "postgresql+psycopg://aid:hunter2@db.example/aid"
    shown = _config_show(env)
    assert "hunter2" not in shown and SECRET not in shown
    assert "postgresql+psycopg://aid:***@db.example/aid" in shown


def test_empty_metrics_port_disables_metrics(tmp_path: Path) -> None:
    env = _env(tmp_path, 7233, 8233, 9464)
    env["AIDFLOW_METRICS_PORT"] = ""
    assert '"metrics_port": null' in _config_show(env)


def test_config_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "aidflow.toml").write_text('task_queue = "county-341225"\nlog_format = "json"\n')
    env = _env(tmp_path, 7233, 8233, 9464)
    assert '"task_queue": "county-341225"' in _config_show(env, cwd=tmp_path)


def _cli(
    stack: Stack, *args: str, cwd: Path | None = None, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "AIDFLOW_API_KEY": key} if key else stack.env
    return subprocess.run(
        [str(VENV_BIN / "aidflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or stack.data_dir.parent,
    )


def test_command_line_round_trip(stack: Stack, tmp_path: Path) -> None:
    """An office's day on the command line: places, registry, apply, decide, status, list, notice."""
    import json as _json
    from importlib import resources

    from tests.support import make_national_id

    stack.start()
    places = tmp_path / "places.csv"
    places.write_text(
        resources.files("models.sample").joinpath("places.csv").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    r = _cli(stack, "places", "import", str(places))
    assert r.returncode == 0 and "imported 11 of 11" in r.stdout, r.stdout + r.stderr
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "household_no,head_name,member_ids,county_code,township_code,village_code,status,year\n"
        f"HH00901,户主,{make_national_id(901)},341225000000,341225100000,341225100201,active,2027\n",
        encoding="utf-8",
    )
    r = _cli(stack, "registry", "import", str(registry))
    assert r.returncode == 0 and "imported 1 of 1" in r.stdout, r.stdout + r.stderr

    apps = tmp_path / "apps.csv"
    header = (
        "programme,season,applicant_name,national_id,phone,household_no,places.county_code,places.township_code,"
        "places.village_code,university,education_level,bank_name,account_number,account_holder,"
        "documents.application_form,documents.household_register_head,documents.household_register_student,"
        "documents.identity_card,documents.student_card,documents.subsidy_card_passbook\n"
    )
    good = (
        f"county-subsidy,2027,学生901,{make_national_id(901)},13800000901,HH00901,341225000000,341225100000,"
        "341225100201,安徽大学,undergraduate_full_time,阜南农商银行,6230201234567890901,家长901,3,1,1,1,1,1\n"
    )
    bad = (
        f"county-subsidy,2027,学生902,{make_national_id(902)},,HH00902,341225000000,341225100000,"
        "341225100201,安徽大学,undergraduate_full_time,阜南农商银行,6230201234567890902,家长902,1,1,1,1,1,1\n"
    )
    apps.write_text(header + good + bad, encoding="utf-8")
    # R10: each office acts with its own credential (the actor is the credential's).
    keys = {}
    for name, role, place in (
        ("v1", "village_committee", "341225100201"),
        ("c1", "county_education_bureau", "341225000000"),
        ("u1", "university", "10357"),
        ("s1", "central_school", "341225100000"),
        ("t1", "helper", "S01"),
        ("col", "college", "C01"),
    ):
        r = _cli(
            stack,
            "credentials",
            "create",
            "--actor",
            name,
            "--role",
            role,
            "--place",
            place,
            "--json",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        keys[name] = _json.loads(r.stdout)["api_key"]
    r = _cli(stack, "credentials", "list")
    assert r.returncode == 0 and "v1" in r.stdout and "c1" in r.stdout, r.stdout + r.stderr
    # The student loan's centre and a university, each with its own key.
    r = _cli(
        stack,
        "loan",
        "check-in",
        "--national-id",
        make_national_id(903),
        "--name",
        "学生903",
        key=keys["c1"],
    )
    assert r.returncode == 0 and "排第 1 位" in r.stdout, r.stdout + r.stderr
    r = _cli(stack, "loan", "queue", key=keys["c1"])
    assert r.returncode == 0 and "学***3" in r.stdout, r.stdout + r.stderr
    r = _cli(stack, "loan", "verify", "ABCD-EFGH-JKLM-NPQR", key=keys["u1"])
    assert r.returncode == 1 and "no receipt of acceptance with this code" in r.stderr
    # A dropout case: the central school opens it, the teacher logs a visit with their key.
    import datetime as _dt

    from models.calendar import SHANGHAI
    from tests.support import PLACES

    today = _dt.datetime.now(SHANGHAI).date()
    case_file = tmp_path / "case.json"
    case_file.write_text(
        _json.dumps(
            {
                "programme": "dropout-persuasion",
                "year": today.year,
                "places": PLACES.model_dump(mode="json"),
                "name": "李小红",
                "national_id": make_national_id(905),
                "members": [
                    {"actor_id": "t1", "name": "李老师", "role": "teacher", "unit": "S01"},
                    {"actor_id": "cadre-v", "name": "村干部", "role": "village_cadre"},
                    {"actor_id": "parent-1", "name": "家长", "role": "guardian"},
                ],
            }
        ),
        encoding="utf-8",
    )
    r = _cli(stack, "case", "open", str(case_file), key=keys["s1"])
    assert r.returncode == 0 and "case/dropout-persuasion/" in r.stdout, r.stdout + r.stderr
    case_id = r.stdout.split()[-1]
    r = _cli(
        stack,
        "case",
        "contact",
        case_id,
        "--member",
        "t1",
        "--on",
        today.isoformat(),
        "--kind",
        "visit",
        "--done",
        "家访劝返",
        key=keys["t1"],
    )
    assert r.returncode == 0 and "logged" in r.stdout, r.stdout + r.stderr
    r = _cli(stack, "case", "close", case_id, "--outcome", "returned_to_school", key=keys["s1"])
    assert r.returncode == 1 and "evidence" in r.stderr, r.stdout + r.stderr
    r = _cli(stack, "case", "status", case_id, key=keys["t1"])
    assert r.returncode == 0 and "contacts 1" in r.stdout, r.stdout + r.stderr
    r = _cli(
        stack,
        "case",
        "report",
        "--programme",
        "dropout-persuasion",
        "--year",
        str(today.year),
        key=keys["c1"],
    )
    assert r.returncode == 0 and "S01" in r.stdout and "台账" in r.stdout, r.stdout + r.stderr
    failed = tmp_path / "failed.csv"
    failed.write_text(
        "national_id,name,village_code,failed_courses,helper_teacher_id,helper_teacher_name,"
        "peer_id,peer_name,guardian_contact\n"
        f"{make_national_id(906)},孙同学,341225100201,高等数学;大学英语,th1,王老师,pp1,赵同学,13900000906\n"
        f"{make_national_id(906)[:-1]}X,错号,341225100201,线性代数,th2,李老师,pp2,钱同学,\n",
        encoding="utf-8",
    )
    r = _cli(stack, "case", "import", str(failed), "--year", str(today.year), key=keys["col"])
    assert r.returncode == 1 and "row 2: case/academic-help/" in r.stdout, r.stdout + r.stderr
    assert "row 3: refused: national_id" in r.stdout and "1 of 2 row(s) refused" in r.stderr
    r = _cli(stack, "apply", str(apps), "--received-at", "2027-08-10T10:00+08:00", "--json")
    assert r.returncode == 2 and "AIDFLOW_API_KEY" in r.stderr  # only an office dates forms
    r = _cli(
        stack,
        "apply",
        str(apps),
        "--received-at",
        "2027-08-10T10:00+08:00",
        "--json",
        key=keys["v1"],
    )
    assert r.returncode == 1, r.stderr  # one row refused
    rows = _json.loads(r.stdout)
    assert rows[0]["accepted"] and rows[0]["workflow_id"].startswith("county-subsidy/2027/341225/")
    assert (
        not rows[1]["accepted"]
        and "registry" in rows[1]["reason"]
        and "documents.application_form" in rows[1]["reason"]
    )
    assert make_national_id(902) not in r.stdout + r.stderr
    wf = rows[0]["workflow_id"]

    r = _cli(
        stack,
        "decide",
        wf,
        "--stage",
        "county_approval",
        "--decision",
        "approve",
        key=keys["c1"],
    )
    assert r.returncode == 1 and "refused:" in r.stderr and "village_review" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = _cli(
        stack,
        "decide",
        wf,
        "--stage",
        "village_review",
        "--decision",
        "approve",
        key=keys["v1"],
    )
    assert r.returncode == 0 and "approved; next: village_notice" in r.stdout, r.stderr
    for _ in range(50):
        r = _cli(stack, "status", wf, "--json", "--trail", key=keys["v1"])
        st = _json.loads(r.stdout)
        if st["stage"] == "village_notice":
            break
        time.sleep(0.2)
    # It goes up automatically when the window closes: it waits on the public notice.
    assert st["stage"] == "village_notice" and st["waiting_for"] == "public"
    kinds = [e["kind"] for e in st["trail"]]
    assert (
        kinds[:2] == ["submitted", "stage_entered"] and "decision" in kinds and "at_risk" in kinds
    )
    # Before the window closes the village list cannot go up (it goes up automatically at the close).
    for _ in range(40):
        r = _cli(stack, "notice", "post", "--village", "341225100201", key=keys["v1"])
        if "window closes" in r.stderr:
            break
        time.sleep(0.5)  # the notice may not be listed yet (visibility lags a moment)
    assert (
        r.returncode == 1
        and "posted when the application window closes (2027-09-01 00:00)" in r.stderr
    ), r.stdout + r.stderr
    notice = "notice/county-subsidy/2027/village/341225100201/village_notice"
    r = _cli(stack, "notice", "show", notice, key=keys["v1"])
    assert r.returncode == 0 and "1 件申请待村委会" in r.stdout, r.stdout + r.stderr
    for _ in range(50):
        r = _cli(stack, "list", "--village", "341225100201", "--json", key=keys["c1"])
        listed = _json.loads(r.stdout)
        if listed and listed[0]["stage"] == "village_notice" and listed[0]["at_risk"]:
            break
        time.sleep(0.2)
    assert [x["workflow_id"] for x in listed] == [wf] and listed[0]["at_risk"]
    # Reads go through the gateway too, at the key's place only.
    r = _cli(stack, "list", "--village", "341225100202", key=keys["v1"])
    assert r.returncode == 1 and "does not hold village 341225100202" in r.stderr, r.stderr
    r = _cli(stack, "audit", "verify", key=keys["v1"])
    assert r.returncode == 1 and "only the county's offices" in r.stderr, r.stderr
    r = _cli(stack, "audit", "verify", "--database")
    assert r.returncode == 0 and "audit log intact" in r.stdout, r.stdout + r.stderr
    r = _cli(stack, "audit", "verify", key=keys["c1"])
    assert r.returncode == 0 and "each matching its workflow history (1)" in r.stdout, (
        r.stdout + r.stderr
    )
    out = stack.data_dir.parent / "audit.csv"
    r = _cli(stack, "audit", "export", "--out", str(out), key=keys["c1"])
    assert r.returncode == 0 and wf in out.read_text(encoding="utf-8"), r.stdout + r.stderr
    # The report's files are fetched from the gateway, not named on its machine.
    reports = tmp_path / "reports"
    r = _cli(
        stack,
        *("report", "--county", "341225000000", "--season", "2027", "--out-dir", str(reports)),
        key=keys["c1"],
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (markdown,) = reports.glob("*.md")
    assert "阜南县 2027 county-subsidy: as of now" in markdown.read_text(encoding="utf-8")
    (xlsx,) = reports.glob("*.xlsx")
    assert zipfile.is_zipfile(xlsx)
    # The national grant's list (one student not on the registry) and the village's ledger.
    grants = tmp_path / "ngrant.csv"
    grants.write_text(
        "national_id,name,university,grade,amount_cny\n"
        f"{make_national_id(901)},学生901,安徽大学,一等,4000\n"
        f"{make_national_id(903)},学生903,安徽大学,二等,3000\n",
        encoding="utf-8",
    )
    r = _cli(stack, "grants", "import", str(grants), "--year", "2027")
    assert r.returncode == 0 and "imported 2 of 2" in r.stdout, r.stdout + r.stderr
    assert "1 student(s) not on the registry" in r.stdout
    r = _cli(stack, "grants", "import", str(tmp_path), "--year", "2027")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    ledger = tmp_path / "ledger.xlsx"
    r = _cli(stack, "ledger", "export", "--year", "2027", "--out", str(ledger), key=keys["v1"])
    assert r.returncode == 0 and "1 student(s), 1 line(s), 4,000 CNY" in r.stdout, r.stderr
    assert ledger.read_bytes()[:2] == b"PK"
    enrolment = tmp_path / "enrolment.csv"
    enrolment.write_text(
        "national_id,name,school,education_level,year_of_study\n"
        f"{make_national_id(901)},学生901,安徽大学,undergraduate_full_time,1\n",
        encoding="utf-8",
    )
    r = _cli(stack, "registry", "import", str(enrolment), "--kind", "enrolment")
    assert r.returncode == 2 and "--as-of" in r.stderr, r.stdout + r.stderr
    r = _cli(
        stack, "registry", "import", str(enrolment), "--kind", "enrolment", "--as-of", "2027-07-31"
    )
    assert r.returncode == 0 and "imported 1 of 1" in r.stdout, r.stdout + r.stderr
    r = _cli(stack, "ledger", "coverage", "--season", "2027", "--json", key=keys["v1"])
    covered = _json.loads(r.stdout)
    assert (covered["eligible"], covered["applied"], covered["paid"]) == (1, 1, 0), r.stdout
    r = _cli(
        stack, "ledger", "export", "--year", "2027", "--village", "341225100202", key=keys["v1"]
    )
    assert r.returncode == 1 and "does not hold village 341225100202" in r.stderr, r.stderr
    assert stack.stop() == 0


# --------------------------------------------------------- a deployment's own settings

PRODUCTION_DB = "postgresql+psycopg://aid:pw@db.example/aid"


def test_a_shared_database_needs_the_deployments_secret_and_bank(tmp_path: Path) -> None:
    """With a database server, nothing is left to one machine's defaults: a random secret
    of its own would hash and seal otherwise than the other processes, and the default
    bank is the simulator, which answers every disbursement file "paid"."""
    from workers.settings import ConfigurationError, Settings

    shared = Settings(data_dir=tmp_path, database_url=PRODUCTION_DB)
    with pytest.raises(ConfigurationError, match="AIDFLOW_SECRET_KEY"):
        shared.secret_key_bytes()
    assert not (tmp_path / "secret.key").exists()
    with pytest.raises(ConfigurationError, match="AIDFLOW_BANK"):
        shared.check_bank()
    said = Settings(
        data_dir=tmp_path, database_url=PRODUCTION_DB, secret_key=SECRET, bank="simulated"
    )
    assert said.secret_key_bytes() == bytes.fromhex(SECRET)
    said.check_bank()  # said, even the simulator (a test deployment)
    # The embedded stack keeps its defaults: SQLite, a secret made once in its data dir.
    embedded = Settings(data_dir=tmp_path)
    embedded.check_bank()
    assert len(embedded.secret_key_bytes()) == 32


def test_a_worker_on_a_shared_database_without_its_bank_refuses_to_start(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port(), free_port(), free_port())
    env["AIDFLOW_DATABASE_URL"] = PRODUCTION_DB
    r = subprocess.run(
        [str(VENV_BIN / "aidflow"), "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1
    assert "AIDFLOW_BANK is not set" in r.stderr, r.stderr


def test_commands_on_the_database_refuse_a_gateway_only_setup(tmp_path: Path) -> None:
    """Set up as a remote CLI (AIDFLOW_API_URL, no database, no secret), a command that
    works on the database or signs by itself refuses, and leaves no database or secret
    of its own behind (an import that succeeded there never matched anyone)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDFLOW_")}
    env.update(AIDFLOW_DATA_DIR=str(tmp_path / "data"), AIDFLOW_API_URL="http://gw.example:8000")
    rows = tmp_path / "households.csv"
    rows.write_text("id_number,name\n")
    commands = [
        ["registry", "import", str(rows), "--kind", "poor-households"],
        ["places", "import", str(rows)],
        ["credentials", "list"],
        ["dashboard", "--county", "341225000000", "--season", "2027"],
    ]
    for command in commands:
        r = subprocess.run(
            [str(VENV_BIN / "aidflow"), *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 1, (command, r.stdout, r.stderr)
        assert "AIDFLOW_API_URL (http://gw.example:8000)" in " ".join(r.stderr.split()), r.stderr
    assert not (tmp_path / "data").exists()


def test_the_dashboard_link_points_at_the_gateway_the_cli_uses(tmp_path: Path) -> None:
    env = _env(tmp_path, 7233, 8233, 9464)
    env["AIDFLOW_API_URL"] = "https://aid.example.gov.cn"
    r = subprocess.run(
        [str(VENV_BIN / "aidflow"), "dashboard", "--county", "341225000000", "--season", "2027"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("https://aid.example.gov.cn/"), r.stdout
