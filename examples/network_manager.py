"""A manager shared over the network: a server on an address with an authkey, and a client.

The client here is a local process, but it knows only the URL and the key, as
a process on another machine would (there, listen on a real interface and use
a secret key). Managed objects travel too: the client writes into a dict the
server holds.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import MutableMapping

import channels

AUTHKEY = b"example key"


def produce(url: str, stats: MutableMapping[str, int]) -> None:
    """Join the channel by its URL, send numbers on it, and note how many on the server."""
    with channels.open_channel[int](url, authkey=AUTHKEY) as numbers:
        numbers.send_many(range(1, 101))
    stats["sent"] = 100


if __name__ == "__main__":
    with channels.ChannelManager(("127.0.0.1", 0), authkey=AUTHKEY) as server:
        address = server.client_params()[0]
        assert isinstance(address, tuple)
        host, port = address
        url = f"manager://{host}:{port}/numbers"
        stats = server.dict[str, int]()
        numbers = channels.open_channel[int](url, authkey=AUTHKEY)
        client = multiprocessing.Process(target=produce, args=(url, stats))
        client.start()
        client.join()
        numbers.sender.close()  # with the client's handle closed too, the channel ends
        total = sum(numbers.receiver)
        print("numbers sent by the client:", stats["sent"])
        print("their total:", total)
