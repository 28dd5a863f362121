"""The embedded Placement: the real service on 127.0.0.1, over HTTP.

Covers both serving modes (in_thread over sqlite, subprocess over MariaDB),
restarts over the same state directory, several processes sharing one sqlite
file, and the errors an operator sees when Placement cannot be reached.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

from nova_slices.errors import PlacementError
from nova_slices.placement import wsgi
from nova_slices.placement.client import PlacementClient, expect
from nova_slices.placement.embedded import EmbeddedPlacement
from nova_slices.placement.session import placement_adapter  # noqa: E402
from tests.fixtures.scheduling import EXCLUSIVE

MV = "1.39"


class _Answer:
    """The parts of an HTTP answer these tests look at."""

    def __init__(self, resp):
        self.status_code = resp.status
        self._body = resp.body

    def json(self):
        return self._body


def call(
    adapter, method, url, microversion, json=None, ok=(200, 201, 204, 409)
):
    """One Placement call through the package's client."""
    resp = PlacementClient(adapter).request(
        method, url, json=json, microversion=microversion
    )
    return _Answer(expect(resp, *ok))


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


# -- helpers ----------------------------------------------------------------


def make_rc(adapter, name):
    call(adapter, "PUT", "/resource_classes/" + name, MV, ok=(201, 204))


def make_provider(adapter, name, parent=None):
    rp = str(uuid.uuid4())
    body = {"name": name, "uuid": rp}
    if parent:
        body["parent_provider_uuid"] = parent
    call(adapter, "POST", "/resource_providers", MV, json=body, ok=(200,))
    return rp


def set_inventory(adapter, rp, **totals):
    gen = call(adapter, "GET", "/resource_providers/" + rp, MV).json()
    body = {
        "resource_provider_generation": gen["generation"],
        "inventories": {rc: {"total": t} for rc, t in totals.items()},
    }
    url = "/resource_providers/%s/inventories" % rp
    call(adapter, "PUT", url, MV, json=body, ok=(200,))


def allocate(adapter, rp, resources, ok=(204, 409)):
    body = {
        "allocations": {rp: {"resources": resources}},
        "consumer_generation": None,
        "project_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "consumer_type": "INSTANCE",
    }
    url = "/allocations/" + str(uuid.uuid4())
    return call(adapter, "PUT", url, MV, json=body, ok=ok)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_python(code, timeout=120):
    """Run ``code`` in a fresh interpreter; returns its JSON output."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "state")


# -- in_thread over sqlite ----------------------------------------------------


def test_same_subtree_candidates_in_thread_sqlite(state_dir):
    with EmbeddedPlacement(state_dir) as service:
        assert service.endpoint.startswith("http://127.0.0.1:")
        assert os.path.exists(os.path.join(state_dir, "placement.sqlite"))
        adapter = placement_adapter(service.endpoint)
        for rc in ("CUSTOM_SLICE_T_4", "CUSTOM_SLICE_T_4_UNITS"):
            make_rc(adapter, rc)
        make_rc(adapter, "CUSTOM_SLICE_T_1")
        root = make_provider(adapter, "host")
        node = make_provider(adapter, "host_4_1", parent=root)
        leaves = [
            make_provider(adapter, "host_1_%d" % i, parent=node)
            for i in range(4)
        ]
        set_inventory(
            adapter, node, CUSTOM_SLICE_T_4=1, CUSTOM_SLICE_T_4_UNITS=4
        )
        for leaf in leaves:
            set_inventory(adapter, leaf, CUSTOM_SLICE_T_1=1)

        query = (
            "/allocation_candidates?resources_S=CUSTOM_SLICE_T_1:1"
            "&resources_A1=CUSTOM_SLICE_T_4_UNITS:1"
            "&same_subtree=_A1,_S&group_policy=none"
        )
        body = call(adapter, "GET", query, MV, ok=(200,)).json()
        requests = body["allocation_requests"]
        assert len(requests) == 4
        assert {r["mappings"]["_S"][0] for r in requests} == set(leaves)
        assert {r["mappings"]["_A1"][0] for r in requests} == {node}

        # same_subtree arrived in 1.36: the microversion header is sent.
        with pytest.raises(PlacementError) as err:
            call(adapter, "GET", query, "1.35", ok=(200,))
        assert "answered 400" in err.value.message

        # Claim a leaf: its ancestor loses a unit, the leaf disappears.
        chosen = requests[0]
        allocation = dict(
            chosen,
            consumer_generation=None,
            project_id=str(uuid.uuid4()),
            user_id=str(uuid.uuid4()),
            consumer_type="INSTANCE",
        )
        url = "/allocations/" + str(uuid.uuid4())
        call(adapter, "PUT", url, MV, json=allocation, ok=(204,))
        body = call(adapter, "GET", query, MV, ok=(200,)).json()
        assert len(body["allocation_requests"]) == 3


def test_private_config_leaves_global_conf_alone(state_dir):
    from oslo_config import cfg

    with EmbeddedPlacement(state_dir, conflict_retry_count=1):
        assert "placement_database" not in cfg.CONF
    conf = wsgi.build_config("sqlite://", conflict_retry_count=3)
    assert conf.api.auth_strategy == "noauth2"
    assert conf.placement.allocation_conflict_retry_count == 3


def test_restart_and_second_process_reuse_the_database(state_dir):
    with EmbeddedPlacement(state_dir) as service:
        adapter = placement_adapter(service.endpoint)
        rp = make_provider(adapter, "kept")

    # Same process, new server over the same file.
    with EmbeddedPlacement(state_dir) as service:
        adapter = placement_adapter(service.endpoint)
        call(adapter, "GET", "/resource_providers/" + rp, MV, ok=(200,))

    # Another process, as a second ``nova-slices`` command would.
    found = run_python(
        f"""
        import json
        from nova_slices.placement.embedded import EmbeddedPlacement
        from nova_slices.placement.session import placement_adapter
        with EmbeddedPlacement({state_dir!r}) as service:
            adapter = placement_adapter(service.endpoint)
            body = adapter.get("/resource_providers",
                               microversion="{MV}").json()
        print(json.dumps([p["uuid"] for p in body["resource_providers"]]))
        """
    )
    assert found == [rp]


def test_one_database_per_process_in_thread_mode(state_dir, tmp_path):
    with EmbeddedPlacement(state_dir) as first:
        # The same database may be served twice...
        with EmbeddedPlacement(state_dir) as second:
            assert second.endpoint != first.endpoint
            call(placement_adapter(second.endpoint), "GET", "/traits", MV)
        call(placement_adapter(first.endpoint), "GET", "/traits", MV)
        # ...but not another one: Placement's engine is process-global.
        other = EmbeddedPlacement(str(tmp_path / "other"))
        with pytest.raises(PlacementError) as err:
            other.start()
        assert err.value.code == "placement.embedded-busy"
        assert not other.running


def test_concurrent_allocations_in_thread_get_no_500(state_dir):
    with EmbeddedPlacement(state_dir) as service:
        adapter = placement_adapter(service.endpoint)
        rp = make_provider(adapter, "busy")
        set_inventory(adapter, rp, VCPU=1000)
        statuses = []
        errors = []

        def worker():
            client = placement_adapter(service.endpoint)
            try:
                for _ in range(15):
                    resp = allocate(client, rp, {"VCPU": 1}, ok=(204,))
                    statuses.append(resp.status_code)
            except Exception as exc:  # reported below, not lost in a thread
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert statuses == [204] * 30
        usages = call(adapter, "GET", "/resource_providers/%s/usages" % rp, MV)
        assert usages.json()["usages"]["VCPU"] == 30


CLAIMER = """
import json, sys, uuid
from nova_slices.placement.embedded import EmbeddedPlacement
from nova_slices.placement.session import placement_adapter
state_path, rp, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
statuses = []
with EmbeddedPlacement(state_path) as service:
    adapter = placement_adapter(service.endpoint)
    print("ready", flush=True)
    sys.stdin.readline()  # go
    for _ in range(rounds):
        body = {
            "allocations": {rp: {"resources": {"VCPU": 1}}},
            "consumer_generation": None,
            "project_id": str(uuid.uuid4()),
            "user_id": str(uuid.uuid4()),
            "consumer_type": "INSTANCE",
        }
        resp = adapter.put("/allocations/%s" % uuid.uuid4(), json=body,
                           microversion="1.39", raise_exc=False)
        statuses.append(resp.status_code)
print(json.dumps(statuses))
"""


@EXCLUSIVE  # a burst of racing processes
def test_processes_sharing_one_sqlite_file_get_no_500(state_dir):
    """Three processes each serve the same sqlite file and claim at once.

    Without the per-request file lock sqlite answers such racers with HTTP
    500 "database is locked" (about one claim in five here).
    """
    rounds, processes = 25, 3
    with EmbeddedPlacement(state_dir) as service:
        adapter = placement_adapter(service.endpoint)
        rp = make_provider(adapter, "shared")
        set_inventory(adapter, rp, VCPU=1000)
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CLAIMER, state_dir, rp, str(rounds)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=dict(os.environ, PYTHONPATH=ROOT),
            )
            for _ in range(processes)
        ]
        try:
            for child in children:
                assert child.stdout.readline().strip() == "ready"
            for child in children:  # all start claiming together
                child.stdin.write("go\n")
                child.stdin.flush()
            results = []
            for child in children:
                out, err = child.communicate(timeout=180)
                assert child.returncode == 0, err
                results.extend(json.loads(out))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
        assert results == [204] * rounds * processes
        usages = call(adapter, "GET", "/resource_providers/%s/usages" % rp, MV)
        assert usages.json()["usages"] == {"VCPU": rounds * processes}


# -- errors ---------------------------------------------------------------


def test_unreachable_endpoint_is_a_clear_error():
    endpoint = "http://127.0.0.1:%d" % closed_port()
    with pytest.raises(PlacementError) as err:
        placement_adapter(endpoint)
    assert err.value.code == "placement.unreachable"
    assert endpoint in err.value.message


def test_service_gone_after_connect_is_a_clear_error(state_dir):
    service = EmbeddedPlacement(state_dir).start()
    endpoint = service.endpoint
    adapter = placement_adapter(endpoint)
    service.stop()
    with pytest.raises(PlacementError) as err:
        call(adapter, "GET", "/resource_providers", MV)
    assert err.value.code == "placement.unreachable"
    assert endpoint in err.value.message
    with pytest.raises(PlacementError) as err:
        _ = service.endpoint
    assert err.value.code == "placement.embedded-not-running"


def test_unexpected_status_carries_placement_error(state_dir):
    with EmbeddedPlacement(state_dir) as service:
        adapter = placement_adapter(service.endpoint)
        missing = "/resource_providers/" + str(uuid.uuid4())
        with pytest.raises(PlacementError) as err:
            call(adapter, "GET", missing, MV)
        # Placement answers a missing provider with its generic code
        assert err.value.code == "placement.undefined_code"
        assert "404" in err.value.message
        assert "No resource provider" in err.value.message
        # 409 is the caller's business and comes back as a response.
        make_provider(adapter, "dup")
        resp = call(
            adapter, "POST", "/resource_providers", MV, json={"name": "dup"}
        )
        assert resp.status_code == 409


def test_remote_mode_reads_keystoneauth_options(state_dir, tmp_path):
    from oslo_config import cfg

    from nova_slices.conf import register_opts
    from nova_slices.errors import ConfigError

    def conf_with(text):
        path = tmp_path / "nova.conf"
        path.write_text("[placement]\n" + text)
        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(["--config-file", str(path)])
        return conf

    with pytest.raises(ConfigError) as err:
        placement_adapter(conf=conf_with(""))
    assert err.value.code == "config.placement-auth"
    assert conf_with("").placement.valid_interfaces == ["internal", "public"]

    with EmbeddedPlacement(state_dir) as service:
        # keystoneauth's admin_token plugin speaks noauth2's language.
        conf = conf_with(
            "auth_type = admin_token\ntoken = admin\nendpoint = %s\n"
            % service.endpoint
        )
        adapter = placement_adapter(conf=conf)
        resp = call(adapter, "GET", "/resource_providers", MV, ok=(200,))
        assert resp.json() == {"resource_providers": []}


def test_subprocess_start_failure_shows_the_servers_error(state_dir):
    url = "mysql+pymysql://nobody:secret@127.0.0.1:%d/x" % closed_port()
    service = EmbeddedPlacement(state_dir, database_url=url, mode="subprocess")
    with pytest.raises(PlacementError) as err:
        service.start()
    assert err.value.code == "placement.embedded-start-failed"
    assert "secret" not in err.value.message
    assert "Can't connect" in err.value.message or "2003" in err.value.message
    assert not service.running


def test_bad_mode_is_rejected(state_dir):
    with pytest.raises(PlacementError) as err:
        EmbeddedPlacement(state_dir, mode="threads")
    assert err.value.code == "placement.embedded-invalid"


# -- subprocess over MariaDB --------------------------------------------------


@pytest.mark.mariadb
@EXCLUSIVE  # with the other MariaDB tests: one server per run
def test_subprocess_mode_over_mariadb(state_dir, mariadb):
    url = mariadb.create_database("sub_basic")
    with EmbeddedPlacement(
        state_dir, database_url=url, mode="subprocess", threads=4
    ) as service:
        adapter = placement_adapter(service.endpoint)
        root = call(adapter, "GET", "/", MV).json()
        assert root["versions"][0]["max_version"] == MV
        rp = make_provider(adapter, "on-mariadb")
        set_inventory(adapter, rp, VCPU=4)
        assert allocate(adapter, rp, {"VCPU": 4}).status_code == 204
        assert not os.path.exists(os.path.join(state_dir, "placement.sqlite"))
    # Restart: the schema is already at head and the data is still there.
    with EmbeddedPlacement(
        state_dir, database_url=url, mode="subprocess"
    ) as service:
        adapter = placement_adapter(service.endpoint)
        usages = call(adapter, "GET", "/resource_providers/%s/usages" % rp, MV)
        assert usages.json()["usages"] == {"VCPU": 4}


@pytest.mark.mariadb
@EXCLUSIVE  # racing threads; one MariaDB server per run
def test_racing_claims_over_mariadb_never_over_commit(state_dir, mariadb):
    """DESIGN 3.2: with allocation_conflict_retry_count = 1 two consumers
    racing for the last unit never both win; the loser gets a 409."""
    url = mariadb.create_database("sub_race")
    with EmbeddedPlacement(
        state_dir, database_url=url, mode="subprocess", threads=8
    ) as service:
        adapter = placement_adapter(service.endpoint)
        make_rc(adapter, "CUSTOM_SLICE_RACE")
        clients = [placement_adapter(service.endpoint) for _ in range(2)]
        for round_ in range(8):
            rp = make_provider(adapter, "race-%d" % round_)
            set_inventory(adapter, rp, CUSTOM_SLICE_RACE=1)
            barrier = threading.Barrier(len(clients))
            results = []

            def claim(client, rp=rp, barrier=barrier, results=results):
                barrier.wait()
                resp = allocate(client, rp, {"CUSTOM_SLICE_RACE": 1})
                results.append(resp.status_code)

            threads = [
                threading.Thread(target=claim, args=(c,)) for c in clients
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert sorted(results) == [204, 409], results
            usages = call(
                adapter, "GET", "/resource_providers/%s/usages" % rp, MV
            ).json()["usages"]
            assert usages == {"CUSTOM_SLICE_RACE": 1}
