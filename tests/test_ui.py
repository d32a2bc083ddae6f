"""The UI as a person sees it: a finished sweep, `evolora ui`, the MLflow UI (and optuna-dashboard) opened in
headless Chromium (Debian's chromium + chromium-driver, installed by `make setup`). Asserts what a user must
see — the parent run with its trials nested under it, a trial's metric charts drawn, the registered model with
its `champion` alias, the study in optuna-dashboard — saves screenshots, and checks that stopping `evolora ui`
with SIGTERM stops every server process it started."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from evolora.orchestrator.cli.commands import main

from .conftest import tiny_study
from .helpers.browser import browser as _browser
from .helpers.browser import wait_for as _wait_for
from .helpers.browser import wait_text as _wait_text

pytestmark = pytest.mark.slow

ML = "workflowType=machine_learning"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_image(driver, title: str, server_log: Path, timeout: float = 60) -> None:
    """The image of the chart card titled `title` scrolled into view and decoded (MLflow 3.17 points its src
    at get-artifact, 3.18 at a blob it fetched: the card, not the URL, says which image it is); failing, says
    what the server answers for each image's src and how the page holds them."""

    def loaded():
        imgs = driver.find_elements(
            "xpath", f"//*[normalize-space(text())='{title}']/ancestor::*[.//img][1]//img"
        )
        for i in imgs:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", i)
        return [i for i in imgs if int(i.get_attribute("naturalWidth") or 0) > 0]

    try:
        _wait_for(driver, loaded, f"the image of the chart {title!r}, loaded", timeout)
    except AssertionError as e:
        seen = []
        for i in driver.find_elements("tag name", "img"):
            src = i.get_attribute("src") or ""
            if src.startswith("data:"):
                continue
            try:
                with urllib.request.urlopen(src, timeout=10) as r:
                    answer = (
                        f"HTTP {r.status}, {len(r.read())} bytes, {r.headers.get('Content-Type')}"
                    )
            except Exception as err:  # the server's answer is the diagnosis
                answer = repr(err)
            seen.append(
                f"{src} naturalWidth={i.get_attribute('naturalWidth')} "
                f"complete={i.get_attribute('complete')}: {answer}"
            )
        raise AssertionError(
            f"{e}\nimages on the page:\n"
            + "\n".join(seen or ["none"])
            + f"\nserver log tail:\n{server_log.read_text()[-3000:]}"
        ) from None


def _wait_http(url: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow
def test_the_mlflow_ui_shows_nested_trials_curves_and_the_champion_model(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    study = tiny_study(tmp_path, name="ui-demo", evolution__generations=3)
    study["sweep"] = {"pruner": "none", "sampler": "random"}
    study["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.2, "log": True}
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    storage = str(tmp_path / "mlruns" / "optuna-journal.log")
    assert (
        main(
            [
                "sweep",
                str(path),
                "--n-trials",
                "2",
                "--no-progress",
                "--tracking-uri",
                uri,
                "--storage",
                storage,
            ]
        )
        == 0
    )
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tests")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("evolora.role") == "sweep")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    # told apart by name
    assert len(children) == 2 and len({c.info.run_name for c in children}) == 2
    # params: what a user compares runs by; the whole study is study.yaml
    for r in (
        parent,
        *children,
    ):
        assert len(r.data.params) <= 60 and "None" not in r.data.params.values()
        assert not any(k.startswith(("search.", "mlflow.")) for k in r.data.params)

    port, dport = _free_port(), _free_port()
    log = open(tmp_path / "ui.log", "w")
    evolora = str(Path(sys.executable).parent / "evolora")
    ui = subprocess.Popen(
        [
            evolora,
            "ui",
            "--tracking-uri",
            uri,
            "--storage",
            storage,
            "--port",
            str(port),
            "--dashboard-port",
            str(dport),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/health")
        driver = _browser(tmp_path / "chrome")  # a fresh profile: what a first visit sees
        # the printed address, then a click on the experiment and on a run: Model training, not the GenAI view
        driver.get(base)
        # in the sidebar of the Model training view only
        home = _wait_text(driver, "Model registry")
        # the server evolora starts collects nothing
        assert "Information about UI telemetry" not in home
        _wait_for(
            driver,
            lambda: [a for a in driver.find_elements(By.TAG_NAME, "a") if a.text == "tests"],
            "the experiment in the home page's list",
        )[0].click()
        _wait_for(driver, lambda: "/runs" in driver.current_url, "the runs table")
        assert "workflowType=machine_learning" in driver.current_url
        table = _wait_text(driver, parent.info.run_name)
        assert "No data available" not in table and "Run Name" in table
        driver.find_element(By.LINK_TEXT, parent.info.run_name).click()
        overview = _wait_text(driver, "Parameters (")
        assert "Overview" in overview and "Traces 0" not in overview
        n_params = int(re.search(r"Parameters \((\d+)\)", overview).group(1))
        # what a user compares, not every null of the schema
        assert n_params == len(parent.data.params) <= 60
        # the runs table: the sweep's parent run with its trials shown under it, and as columns the figures
        # and the sampled parameter a user compares them by
        driver.get(f"{base}/#/experiments/{exp.experiment_id}?{ML}")
        _wait_text(driver, parent.info.run_name)
        for c in children:
            _wait_text(driver, c.info.run_name)
        header = " ".join(
            h.text for h in driver.find_elements(By.CSS_SELECTOR, "[role='columnheader']")
        )
        assert "val_best" in header, (
            header
        )  # the grid draws the columns in view; the others, by its state:
        state = json.loads(
            driver.execute_script(
                "return localStorage.getItem(arguments[0])",
                f'MLflowLocalStorage-1.1-ExperimentPage-["{exp.experiment_id}"]-ReactComponentState',
            )
        )
        want = {"metrics.`val_best`", "metrics.`val_gain`", "params.`evolution.mutation_sigma`"}
        assert want <= set(state["selectedColumns"]), state[
            "selectedColumns"
        ]  # the sampled parameter too
        assert state["runsExpanded"] == {parent.info.run_id: True}
        body = driver.find_element(By.TAG_NAME, "body").text
        assert all(
            f"{c.data.metrics['val_best']:.4f}"[:5] in body for c in children
        )  # in their rows
        driver.save_screenshot(str(shots / "runs.png"))
        # a trial's own page opens on its curves picture: the run's description, above its details
        child = children[0]
        assert child.data.tags["mlflow.note.content"].count("curves.png") == 1
        driver.get(f"{base}/#/experiments/{exp.experiment_id}/runs/{child.info.run_id}?{ML}")

        def curves_picture():
            imgs = driver.find_elements(By.CSS_SELECTOR, "img[src*='curves.png']")
            return [i for i in imgs if int(i.get_attribute("naturalWidth") or 0) > 0]

        picture = _wait_for(driver, curves_picture, "the curves picture on the run's page", 60)[0]
        shown = [i for i in driver.find_elements(By.TAG_NAME, "img") if i.is_displayed()]
        assert shown and shown[0] == picture, [i.get_attribute("src") for i in shown]
        driver.save_screenshot(str(shots / "run-overview.png"))
        body = driver.find_element(By.TAG_NAME, "body").text
        # above the run's details: the table of its id, status, … and its parameters
        details = driver.find_elements(By.XPATH, "//*[normalize-space(text())='Run ID']")
        assert details and picture.location["y"] < details[0].location["y"], body[:3000]
        assert "evolora -->" not in driver.find_element(By.TAG_NAME, "body").text
        driver.save_screenshot(str(shots / "run-overview.png"))
        # a trial's curves, drawn
        driver.get(
            f"{base}/#/experiments/{exp.experiment_id}/runs/{child.info.run_id}/model-metrics?{ML}"
        )
        _wait_text(driver, "Model metrics")

        # the curves picture is the first chart: its section ("evolution") before "Model metrics"
        def heights(
            name,
        ):  # where each element reading `name` is (the tab "Model metrics" included)
            found = driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{name}']")
            return [e.location["y"] for e in found]

        section, metrics = heights("evolution"), heights("Model metrics")
        assert section and len(metrics) >= 2 and min(section) < max(metrics), (section, metrics)
        _wait_image(driver, "evolution/curves", tmp_path / "ui.log")
        driver.save_screenshot(str(shots / "trial-charts.png"))
        # every chart the page holds (its state, as the UI keeps it): ids are not drawn as curves
        charts = json.loads(
            driver.execute_script(
                "for (const k of Object.keys(localStorage)) if (k.includes(arguments[0]) && "
                "k.endsWith('chartUIState')) return localStorage.getItem(k); return null",
                child.info.run_id,
            )
            or "{}"
        ).get("compareRunCharts", [])
        keys = {c.get("metricKey") for c in charts} | {
            k for c in charts for k in c.get("imageKeys") or []
        }
        assert {"fit_best", "val_best", "evolution/curves"} <= keys, keys
        assert not keys & {"champion_id", "nevals"}, keys
        # the curves under it, drawn
        search = driver.find_element(By.CSS_SELECTOR, "input[placeholder*='Search metric charts']")
        search.send_keys("fit_")
        _wait_text(driver, "fit_best")
        _wait_text(driver, "Step")  # an axis: the chart rendered, not a spinner
        driver.save_screenshot(str(shots / "trial-metrics.png"))
        # a run summary reads as a value (a bar), not a one-dot line; the curves picture is among the charts
        search.send_keys(Keys.CONTROL, "a")
        search.send_keys(Keys.BACKSPACE)
        search.send_keys("val_best")
        _wait_for(
            driver,
            lambda: "fit_best" not in driver.find_element(By.TAG_NAME, "body").text,
            "the search applied",
        )
        _wait_for(
            driver,
            lambda: driver.find_elements(By.CSS_SELECTOR, "g.barlayer g.trace.bars"),
            "a bar for val_best",
        )
        assert not driver.find_elements(By.CSS_SELECTOR, "g.scatterlayer g.trace.scatter")
        search.send_keys(Keys.CONTROL, "a")
        search.send_keys(Keys.BACKSPACE)
        search.send_keys("curves")
        _wait_for(
            driver,
            lambda: "val_best" not in driver.find_element(By.TAG_NAME, "body").text,
            "the search applied",
        )
        _wait_image(driver, "evolution/curves", tmp_path / "ui.log")
        driver.save_screenshot(str(shots / "trial-curves.png"))
        # the registered model and its champion alias
        best = client.get_model_version_by_alias("ui-demo", "champion")
        driver.get(f"{base}/#/models/ui-demo?{ML}")
        text = _wait_text(driver, "champion")
        assert f"Version {best.version}" in text
        driver.save_screenshot(str(shots / "registry.png"))
        # optuna-dashboard on the same storage, beside it
        if shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)):
            _wait_http(f"http://127.0.0.1:{dport}/dashboard/")
            driver.get(f"http://127.0.0.1:{dport}/dashboard/")
            _wait_text(driver, "ui-demo")
            driver.save_screenshot(str(shots / "optuna-dashboard.png"))
            # the study's page names its objective by the metric, not "Objective 0"
            import optuna

            from evolora.orchestrator.sweep.storage import open_storage

            sid = optuna.load_study(study_name="ui-demo", storage=open_storage(storage))._study_id
            driver.get(f"http://127.0.0.1:{dport}/dashboard/studies/{sid}")
            text = _wait_text(driver, "val stsb_spearman")
            assert "Objective 0" not in text
            driver.save_screenshot(str(shots / "optuna-dashboard-study.png"))
    finally:
        if driver is not None:
            driver.quit()
        # the servers `evolora ui` started, each its own group
        pgids = [
            int(line.split()[1])
            for line in subprocess.run(
                ["ps", "-eo", "pid,pgid,ppid"], capture_output=True, text=True
            ).stdout.splitlines()[1:]
            if int(line.split()[2]) == ui.pid
        ]
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
        log.close()
    printed = (tmp_path / "ui.log").read_text()
    assert pgids, printed[-2000:]
    # what the terminal shows: the addresses, not a line per request nor the servers' start-up chatter
    assert '"GET /' not in printed and "INFO:" not in printed and "Warning" not in printed, printed
    # the link opens the model-training view
    assert f"#/experiments/{exp.experiment_id}?{ML}" in printed
    end = time.time() + 15
    while any(_group_alive(g) for g in pgids) and time.time() < end:
        time.sleep(0.2)
    assert not any(_group_alive(g) for g in pgids), "server processes outlived `evolora ui`"
    # nothing listens on the port any more (TIME_WAIT of closed connections aside)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
    for name in (
        "runs.png",
        "run-overview.png",
        "trial-metrics.png",
        "trial-curves.png",
        "registry.png",
    ):
        assert (shots / name).stat().st_size > 10_000
