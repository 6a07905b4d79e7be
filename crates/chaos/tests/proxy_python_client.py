"""toxiproxy's Python client (PyPI toxiproxy-python) against our proxy.

Run by proxy_python_client.rs: python proxy_python_client.py API_PORT ECHO_PORT
"""
import socket
import sys
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

api_port, echo_port = int(sys.argv[1]), int(sys.argv[2])
upstream = "127.0.0.1:%d" % echo_port

server = Toxiproxy()
server.update_api_consumer("127.0.0.1", api_port)
assert server.running(), "the API answers"
assert b"toxiproxy" in server.version(), server.version()

proxy = server.create(upstream=upstream, name="echo", listen="127.0.0.1:0")
host, port = proxy.listen.rsplit(":", 1)
port = int(port)


def round_trip(msg):
    """Sends msg, reads until the echo is complete or the proxy closes."""
    s = socket.create_connection((host, port), timeout=10)
    start = time.monotonic()
    s.sendall(msg)
    data = b""
    while len(data) < len(msg):
        chunk = s.recv(len(msg) - len(data))
        if not chunk:
            break
        data += chunk
    s.close()
    return data, time.monotonic() - start


data, _ = round_trip(b"plain")
assert data == b"plain", data

# Latency: the reply comes at least that late (a lower bound only).
proxy.add_toxic(type="latency", attributes={"latency": 200, "jitter": 0})
toxics = proxy.toxics()
assert list(toxics) == ["latency_downstream"], toxics
assert toxics["latency_downstream"].attributes["latency"] == 200
data, took = round_trip(b"slow")
assert data == b"slow" and took >= 0.2, (data, took)
proxy.destroy_toxic("latency_downstream")

# Timeout: the request vanishes and the proxy closes the connection.
proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 100})
data, _ = round_trip(b"lost")
assert data == b"", data
proxy.destroy_toxic("timeout_upstream")
assert proxy.toxics() == {}
data, _ = round_trip(b"back")
assert data == b"back", data

# Refusals map onto the client's exceptions (409, 400, 404).
for call, exc in [
    (lambda: APIConsumer.post("/proxies", json={"name": "echo", "upstream": upstream}), ProxyExists),
    (lambda: proxy.add_toxic(type="latency", attributes={"latency": -1}), InvalidToxic),
    (lambda: proxy.add_toxic(type="earthquake"), InvalidToxic),
    (lambda: APIConsumer.get("/proxies/nope"), NotFound),
]:
    try:
        call()
    except exc:
        pass
    else:
        raise AssertionError("expected %s" % exc.__name__)

# Disabled: nothing listens; enabled again on the way out.
with proxy.down():
    try:
        socket.create_connection((host, port), timeout=5).close()
        raise AssertionError("a disabled proxy accepted a connection")
    except ConnectionRefusedError:
        pass
data, _ = round_trip(b"again")
assert data == b"again", data

# Reset removes every toxic.
proxy.add_toxic(type="bandwidth", attributes={"rate": 1})
server.reset()
assert proxy.toxics() == {}

# populate keeps an identical proxy and creates a new one.
made = server.populate([{"name": "second", "upstream": upstream, "listen": "127.0.0.1:0"}])
assert [p.name for p in made] == ["second"], made
assert sorted(server.proxies()) == ["echo", "second"]

server.destroy_all()
assert server.proxies() == {}
print("python client: ok")
