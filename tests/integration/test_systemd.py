"""systemd's Type=notify: kipd sends READY=1 once it listens and
STOPPING=1 when it begins to stop, on the socket named by NOTIFY_SOCKET
(util/notify.c, libsystemd's sd_notify)."""

import socket

import requests

import kiptest


def test_ready_once_listening_and_stopping_on_sigterm(kipd_factory, workroot):
    path = workroot / kiptest.unique("notify-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    path.chmod(0o777)
    sock.settimeout(20)
    try:
        k = kipd_factory(env={"NOTIFY_SOCKET": str(path)}, wait=False)
        msg = sock.recv(4096).decode()
        assert "READY=1" in msg.split("\n"), msg
        assert f"STATUS=serving http://127.0.0.1:{k.port}" in msg, msg
        # Ready means serving: the very next request is answered.
        assert requests.get(f"{k.url}/readyz", timeout=5).status_code == 200
        k.admin_token()
        k.stop()
        msg = sock.recv(4096).decode()
        assert "STOPPING=1" in msg.split("\n"), msg
    finally:
        sock.close()
        path.unlink(missing_ok=True)
