"""Dask over TLS, as the README shows it: a ``Client`` with its ``Security``, a ``tls://``
address in the magic with the certificates in Dask's configuration, and
``jp.set_defaults(scheduler=client)`` for every later cell.

The cluster is a ``LocalCluster`` whose every connection is TLS (``require_encryption``),
with a self-signed certificate made by ``openssl`` for the test (``Security.temporary``
would need the ``cryptography`` package). Its workers are threads of this process, so
the test starts no process it must clean up, yet every message travels over TLS.
"""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402

import jupyter_par as jp  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.timeout(180)]

FRAME = pd.DataFrame({"a": range(60)})


def doubled(row):
    return row["a"] * 2


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=jupyter-par-test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@pytest.fixture(scope="module")
def security(certs):
    from distributed.security import Security

    cert, key = certs
    return Security(tls_ca_file=cert, tls_client_cert=cert, tls_client_key=key,
                    tls_scheduler_cert=cert, tls_scheduler_key=key, tls_worker_cert=cert,
                    tls_worker_key=key, require_encryption=True)


@pytest.fixture(scope="module")
def cluster(security):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tls://", host="127.0.0.1", security=security,
                                  dashboard_address=None) as local:
        assert local.scheduler_address.startswith("tls://127.0.0.1:")
        yield local
        jp.shutdown()


@pytest.fixture
def client(cluster, security):
    with distributed.Client(cluster.scheduler_address, security=security) as mine:
        yield mine
    jp.set_defaults(backend=None, scheduler=None)
    jp.shutdown()


def _ran_on_tls_workers() -> None:
    run = jp.last_run()
    assert run is not None and run.ran == "workers" and run.backend == "dask", run


def test_a_client_with_its_security(client):
    got = jp.apply(FRAME, doubled, axis=1, backend="dask", scheduler=client, jobs=2,
                   progress=False, inline_fallback=False)
    pd.testing.assert_series_equal(got, FRAME.apply(doubled, axis=1))
    _ran_on_tls_workers()
    assert all(w.startswith("tls://") for w in client.scheduler_info()["workers"])
    assert client.status == "running"  # the user's Client: jupyter_par never closes it


def test_plain_tcp_to_a_tls_scheduler_is_refused_in_one_line(cluster):
    address = cluster.scheduler_address.replace("tls://", "tcp://")
    from jupyter_par.backends.dask import SchedulerUnreachableError

    with pytest.raises(SchedulerUnreachableError) as info:
        jp.apply(FRAME, doubled, axis=1, backend="dask", scheduler=address, jobs=2,
                 progress=False, inline_fallback=False)
    assert address in str(info.value) and len(str(info.value).splitlines()) == 1
    jp.shutdown()


def test_the_magic_with_a_tls_address_and_dask_s_own_configuration(shell, cluster, certs):
    cert, key = certs
    shell.user_ns["df"] = FRAME.copy()
    shell.user_ns["doubled"] = doubled
    tls = {"distributed.comm.tls.ca-file": cert, "distributed.comm.tls.client.cert": cert,
           "distributed.comm.tls.client.key": key, "distributed.comm.require-encryption": True}
    try:
        with dask.config.set(tls):
            shell.run_cell_magic(
                "parallel", f"--backend dask --scheduler {cluster.scheduler_address} "
                            "--jobs 2 --no-progress df", "df['b'] = df.apply(doubled, axis=1)\n")
        _ran_on_tls_workers()
        pd.testing.assert_series_equal(shell.user_ns["df"]["b"], FRAME.apply(doubled, axis=1),
                                       check_names=False)
    finally:
        jp.shutdown()


def test_set_defaults_with_the_client_serves_every_later_cell(shell, client):
    shell.user_ns["df"] = FRAME.copy()
    shell.user_ns["doubled"] = doubled
    jp.set_defaults(backend="dask", scheduler=client)
    for _ in range(2):
        shell.run_cell_magic("parallel", "--jobs 2 --no-progress --out out df",
                             "df.apply(doubled, axis=1)\n")
        _ran_on_tls_workers()
        pd.testing.assert_series_equal(shell.user_ns.pop("out"), FRAME.apply(doubled, axis=1),
                                       check_names=False)
