#!/usr/bin/env python3
"""sdnotify.py BINARY - the gateway's side of Type=notify: started with
NOTIFY_SOCKET pointing at a datagram socket of ours, it sends READY=1 once it
listens (not before: the port is already printed), RELOADING=1 then READY=1
around a SIGHUP reload, and STOPPING=1 when SIGTERM begins the stop; it exits
0. Without NOTIFY_SOCKET nothing is sent (the other tests)."""
import os, signal, socket, subprocess, sys, tempfile, time

binary = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="ngw-sdnotify-")
path = os.path.join(tmp, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
sock.settimeout(10)
rules = os.path.join(tmp, "rules.yml")
with open(rules, "w") as f:
    f.write("rules: []\n")


def recv(what):
    try:
        msg = sock.recv(4096).decode()
    except socket.timeout:
        sys.exit(f"FAIL: no message while waiting for {what}")
    print(f"got: {msg!r}")
    return dict(line.split("=", 1) for line in msg.splitlines() if "=" in line)


env = dict(os.environ, NOTIFY_SOCKET=path)
p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--state-dir", os.path.join(tmp, "state"),
                      "--rules", rules], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    first = p.stdout.readline()
    if "listening on" not in first:
        sys.exit(f"FAIL: first stdout line {first!r}")
    m = recv("READY=1")
    if m.get("READY") != "1" or "STATUS" not in m:
        sys.exit(f"FAIL: expected READY=1 with a STATUS, got {m}")
    p.send_signal(signal.SIGHUP)
    m = recv("RELOADING=1")
    if m.get("RELOADING") != "1":
        sys.exit(f"FAIL: expected RELOADING=1, got {m}")
    m = recv("READY=1 after the reload")
    if m.get("READY") != "1" or "reloaded" not in m.get("STATUS", ""):
        sys.exit(f"FAIL: expected READY=1 with 'rules reloaded', got {m}")
    p.send_signal(signal.SIGTERM)
    m = recv("STOPPING=1")
    if m.get("STOPPING") != "1":
        sys.exit(f"FAIL: expected STOPPING=1, got {m}")
    rc = p.wait(timeout=20)
    if rc != 0:
        sys.exit(f"FAIL: exit code {rc}")
finally:
    if p.poll() is None:
        p.kill()
    sock.close()
    for root, dirs, files in os.walk(tmp, topdown=False):
        for n in files:
            os.unlink(os.path.join(root, n))
        for n in dirs:
            os.rmdir(os.path.join(root, n))
    os.rmdir(tmp)
print("ok")
