"""Two kipd on one data folder (issue #16).

A second kipd on a data folder in use must be refused at once, with a
message naming the PID that holds it (an flock on DATA_DIR/kipd.lock, not a
guess from postmaster.pid), and the first must keep serving with its
PostgreSQL untouched. The lock is the kernel's: kill -9 releases it.
"""

import json
import time

import kiptest
from kiptest import Api, Kipd, pid_alive


def test_second_kipd_on_one_data_folder_is_refused_at_once(workroot):
    base = kiptest.make_workdir(workroot, kiptest.unique("datalock-"))
    data = base / "data"
    first = Kipd.embedded(base, data, name="first")
    with kiptest.running_kipd(first):
        admin = Api(first.url, first.admin_token(), name="admin")
        assert admin.get("/v1/me").status_code == 200
        pm = first.postmaster_pid()
        assert (data / "kipd.lock").read_text().strip() == str(first.pid)

        second_dir = kiptest.make_workdir(workroot, kiptest.unique("datalock-second-"))
        second = Kipd.embedded(second_dir, data, name="second")
        t0 = time.monotonic()
        second.start(wait=False)
        code = second.proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        for reader in second._threads:
            reader.join(5)
        assert code != 0, "the second kipd must exit non-zero"
        assert elapsed < 3, f"refused after {elapsed:.1f}s, not at once"
        errors = [json.loads(line) for line in second.stderr_lines() if line.startswith("{")]
        refusal = [e for e in errors if e.get("msg", e.get("message", "")).startswith("refusing to start")]
        assert refusal, second.stderr_lines()
        assert refusal[0]["holder_pid"] == first.pid, refusal
        assert f"PID {first.pid}" in refusal[0]["error"], refusal
        assert str(data) in refusal[0]["error"]

        # The first one is untouched: same postmaster, still serving.
        assert first.alive()
        assert first.postmaster_pid() == pm and pid_alive(pm)
        for _ in range(5):
            assert admin.get("/v1/me").status_code == 200
            time.sleep(0.2)
        assert (data / "kipd.lock").read_text().strip() == str(first.pid)

        # kill -9: the kernel drops the lock; a new kipd takes the folder over.
        first.kill()
        first.start()
        assert (data / "kipd.lock").read_text().strip() == str(first.pid)
        assert Api(first.url, first.admin_token()).get("/v1/me").status_code == 200
