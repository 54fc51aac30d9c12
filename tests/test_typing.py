"""Type checkers reject misuse of the public API, and accept its intended use.

Each case is a small module. All of them are checked in one ``mypy --strict``
run (with the project's configuration) and one strict pyright run; each test
then looks up its own module in the parsed output. A rejected case must give
the expected error on the line marked ``# !`` and nowhere else; an accepted
case must give no error at all, so that neither list can pass by checking
nothing. Last, pyright's ``--verifytypes`` must find every public name typed.

The positive side, what each public call is inferred to return, is in
``tests/typing/``, which the checkers read and pytest does not run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARK = "# !"

CHANNEL_PRELUDE = """\
from channels import (
    Channel, Endpoint, ManagerChannel, PipeChannel, QueueChannel, Receiver,
    Sender, SimpleQueueChannel, duplex, open_channel,
)

ch = open_channel[int]("queue")
"""

POOL_PRELUDE = """\
from channels import Pool, PoolExecutor, open_channel

def add(a: int, b: int) -> int:
    return a + b

def square(x: int) -> int:
    return x * x

def shout(s: str) -> str:
    return s.upper()

pool = Pool(workers=2)
"""

STATE_PRELUDE = """\
from channels import Array, ChannelManager, Lock, Value

manager = ChannelManager()
"""


@dataclass(frozen=True)
class Rejected:
    """A misuse, and the error each checker must give on the marked line.

    ``mypy`` is the error code and a fragment of the message; ``pyright`` the
    rule and a fragment of its message.
    """

    name: str
    body: str
    mypy: tuple[str, str]
    pyright: tuple[str, str]
    prelude: str = CHANNEL_PRELUDE


@dataclass(frozen=True)
class Accepted:
    """An intended use: no error from either checker."""

    name: str
    body: str
    prelude: str = CHANNEL_PRELUDE


REJECTED = [
    # -- batches, asyncio and select ------------------------------------------------
    Rejected(
        "send_many_strs_into_int_channel",
        'ch.send_many(["3"])  # !',
        mypy=("list-item", 'List item 0 has incompatible type "str"; expected "int"'),
        pyright=("reportArgumentType", 'cannot be assigned to parameter "items"'),
    ),
    Rejected(
        "recv_many_into_list_of_str",
        "batch: list[str] = ch.recv_many(10)  # !",
        mypy=("assignment", 'expression has type "list[int]", variable has type "list[str]"'),
        pyright=("reportAssignmentType", '"list[int]" is not assignable to "list[str]"'),
    ),
    Rejected(
        "asend_str_into_int_sender",
        """\
        async def main() -> None:
            await ch.sender.asend("3")  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "asend" of "Sender" has incompatible type "str"; expected "int"',
        ),
        pyright=("reportArgumentType", '"Literal[\'3\']" is not assignable to "int"'),
    ),
    Rejected(
        "thread_channel_takes_no_serializer",
        """\
        from channels import ThreadChannel
        local = ThreadChannel[int](serializer="json")  # !
        """,
        mypy=(
            "arg-type",
            'Argument "serializer" to "ThreadChannel" has incompatible type "str"; '
            'expected "Never"',
        ),
        pyright=("reportArgumentType", 'parameter "serializer" of type "Never"'),
    ),
    Rejected(
        "arecv_into_str",
        """\
        async def main() -> None:
            item: str = await ch.receiver.arecv()  # !
        """,
        mypy=("assignment", 'expression has type "int", variable has type "str"'),
        pyright=("reportAssignmentType", '"int" is not assignable to "str"'),
    ),
    Rejected(
        "async_for_item_is_the_item_type",
        """\
        async def main() -> None:
            async for item in ch.receiver:
                item.upper()  # !
        """,
        mypy=("attr-defined", '"int" has no attribute "upper"'),
        pyright=("reportAttributeAccessIssue", 'Cannot access attribute "upper" for class "int"'),
    ),
    Rejected(
        "select_gives_the_union",
        """\
        from channels import select
        words = open_channel[str]("queue")
        _, got = select(ch.receiver, words.receiver)
        x: int = got  # !
        """,
        mypy=("assignment", 'expression has type "int | str", variable has type "int"'),
        pyright=("reportAssignmentType", '"str" is not assignable to "int"'),
    ),
    Rejected(
        "select_takes_receivers_only",
        """\
        from channels import select
        select(ch.sender)  # !
        """,
        mypy=("call-overload", "No overload variant"),
        pyright=("reportCallIssue", "No overloads"),
    ),
    # -- items of the wrong type --------------------------------------------------
    Rejected(
        "send_str_into_int_channel",
        'ch.send("3")  # !',
        mypy=(
            "arg-type",
            'Argument 1 to "send" of "Sender" has incompatible type "str"; expected "int"',
        ),
        pyright=("reportArgumentType", '"Literal[\'3\']" is not assignable to "int"'),
    ),
    Rejected(
        "send_nowait_str_into_int_sender",
        'ch.sender.send_nowait("3")  # !',
        mypy=(
            "arg-type",
            'Argument 1 to "send_nowait" of "Sender" has incompatible type "str"; expected "int"',
        ),
        pyright=("reportArgumentType", '"Literal[\'3\']" is not assignable to "int"'),
    ),
    Rejected(
        "send_str_into_int_backend",
        'QueueChannel[int]().send("3")  # !',
        mypy=(
            "arg-type",
            'Argument 1 to "send" of "ChannelBase" has incompatible type "str"; expected "int"',
        ),
        pyright=("reportArgumentType", '"Literal[\'3\']" is not assignable to "int"'),
    ),
    Rejected(
        "recv_result_assigned_to_str",
        "x: str = ch.recv()  # !",
        mypy=(
            "assignment",
            'Incompatible types in assignment (expression has type "int", variable has type "str")',
        ),
        pyright=("reportAssignmentType", 'Type "int" is not assignable to declared type "str"'),
    ),
    Rejected(
        "recv_nowait_result_assigned_to_bytes",
        "x: bytes = ch.receiver.recv_nowait()  # !",
        mypy=(
            "assignment",
            'expression has type "int", variable has type "bytes"',
        ),
        pyright=("reportAssignmentType", 'Type "int" is not assignable to declared type "bytes"'),
    ),
    Rejected(
        "iterated_item_used_as_str",
        """\
        for item in ch.receiver:
            item.upper()  # !
        """,
        mypy=(
            "attr-defined",
            '"int" has no attribute "upper"',
        ),
        pyright=("reportAttributeAccessIssue", 'Cannot access attribute "upper" for class "int"'),
    ),
    Rejected(
        "timeout_given_as_str",
        'ch.recv(timeout="1")  # !',
        mypy=(
            "arg-type",
            'Argument "timeout" to "recv" of "Receiver" has incompatible type "str"; '
            'expected "float | None"',
        ),
        pyright=("reportArgumentType", 'parameter "timeout" of type "float | None"'),
    ),
    # -- the wrong half -----------------------------------------------------------
    Rejected(
        "recv_on_sender",
        "ch.sender.recv()  # !",
        mypy=(
            "attr-defined",
            '"Sender[int]" has no attribute "recv"',
        ),
        pyright=(
            "reportAttributeAccessIssue",
            'Cannot access attribute "recv" for class "Sender[int]"',
        ),
    ),
    Rejected(
        "send_on_receiver",
        "ch.receiver.send(1)  # !",
        mypy=(
            "attr-defined",
            '"Receiver[int]" has no attribute "send"',
        ),
        pyright=(
            "reportAttributeAccessIssue",
            'Cannot access attribute "send" for class "Receiver[int]"',
        ),
    ),
    Rejected(
        "iterate_a_sender",
        """\
        for item in ch.sender:  # !
            pass
        """,
        mypy=(
            "attr-defined",
            '"Sender[int]" has no attribute "__iter__"',
        ),
        pyright=("reportGeneralTypeIssues", '"Sender[int]" is not iterable'),
    ),
    Rejected(
        "clone_a_receiver",
        "ch.receiver.clone()  # !",
        mypy=(
            "attr-defined",
            '"Receiver[int]" has no attribute "clone"',
        ),
        pyright=(
            "reportAttributeAccessIssue",
            'Cannot access attribute "clone" for class "Receiver[int]"',
        ),
    ),
    # -- item types across functions and variance ---------------------------------
    Rejected(
        "int_receiver_where_str_receiver_wanted",
        """\
        def consume(inbox: Receiver[str]) -> None: ...
        consume(ch.receiver)  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "consume" has incompatible type "Receiver[int]"; '
            'expected "Receiver[str]"',
        ),
        pyright=("reportArgumentType", '"Receiver[int]" is not assignable to "Receiver[str]"'),
    ),
    Rejected(
        "int_channel_where_str_sender_wanted",
        """\
        def produce(out: Sender[str]) -> None: ...
        produce(ch)  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "produce" has incompatible type "Channel[int]"; expected "Sender[str]"',
        ),
        pyright=("reportArgumentType", '"Channel[int]" is not assignable to "Sender[str]"'),
    ),
    Rejected(
        "int_receiver_where_bool_receiver_wanted",
        """\
        def consume(inbox: Receiver[bool]) -> None: ...
        consume(ch.receiver)  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "consume" has incompatible type "Receiver[int]"; '
            'expected "Receiver[bool]"',
        ),
        pyright=(
            "reportArgumentType",
            '"T_co@Receiver" is covariant, but "int" is not a subtype of "bool"',
        ),
    ),
    Rejected(
        "bool_sender_where_int_sender_wanted",
        """\
        def produce(out: Sender[int]) -> None: ...
        produce(open_channel[bool]().sender)  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "produce" has incompatible type "Sender[bool]"; expected "Sender[int]"',
        ),
        pyright=(
            "reportArgumentType",
            '"T_contra@Sender" is contravariant, but "bool" is not a supertype of "int"',
        ),
    ),
    Rejected(
        "bool_channel_where_int_channel_wanted",
        """\
        def use(c: Channel[int]) -> None: ...
        use(open_channel[bool]())  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "use" has incompatible type "Channel[bool]"; expected "Channel[int]"',
        ),
        pyright=(
            "reportArgumentType",
            '"T@Channel" is invariant, but "bool" is not the same as "int"',
        ),
    ),
    Rejected(
        "int_channel_where_bool_channel_wanted",
        """\
        def use(c: Channel[bool]) -> None: ...
        use(ch)  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "use" has incompatible type "Channel[int]"; expected "Channel[bool]"',
        ),
        pyright=(
            "reportArgumentType",
            '"T@Channel" is invariant, but "int" is not the same as "bool"',
        ),
    ),
    Rejected(
        "clone_assigned_to_other_item_type",
        "s: Sender[str] = ch.clone()  # !",
        mypy=(
            "assignment",
            'expression has type "Sender[int]", variable has type "Sender[str]"',
        ),
        pyright=("reportAssignmentType", '"Sender[int]" is not assignable to "Sender[str]"'),
    ),
    # -- options ------------------------------------------------------------------
    Rejected(
        "open_channel_maxsize_as_str",
        'open_channel[int]("queue", maxsize="3")  # !',
        mypy=(
            "arg-type",
            'Argument "maxsize" to "__call__" of "ChannelOpener" has incompatible type "str"; '
            'expected "int | None"',
        ),
        pyright=("reportArgumentType", 'parameter "maxsize" of type "int | None"'),
    ),
    Rejected(
        "open_channel_context_as_int",
        'open_channel[int]("queue", context=3)  # !',
        mypy=(
            "arg-type",
            'Argument "context" to "__call__" of "ChannelOpener" has incompatible type "int"',
        ),
        pyright=("reportArgumentType", 'parameter "context" of type "ContextSpec"'),
    ),
    Rejected(
        "open_channel_unknown_option",
        'open_channel[int]("queue", max_size=3)  # !',
        mypy=(
            "call-arg",
            'Unexpected keyword argument "max_size" for "__call__" of "ChannelOpener"',
        ),
        pyright=("reportCallIssue", 'No parameter named "max_size"'),
    ),
    Rejected(
        "open_channel_spec_not_a_string",
        "open_channel[int](3)  # !",
        mypy=(
            "arg-type",
            'Argument 1 to "__call__" of "ChannelOpener" has incompatible type "int"; '
            'expected "str | None"',
        ),
        pyright=("reportArgumentType", 'parameter "spec" of type "str | None"'),
    ),
    Rejected(
        "queue_channel_maxsize_as_str",
        'QueueChannel[int](maxsize="3")  # !',
        mypy=(
            "arg-type",
            'Argument "maxsize" to "QueueChannel" has incompatible type "str"; expected "int"',
        ),
        pyright=("reportArgumentType", 'parameter "maxsize" of type "int"'),
    ),
    Rejected(
        "simplequeue_channel_has_no_maxsize",
        "SimpleQueueChannel[int](maxsize=1)  # !",
        mypy=(
            "call-arg",
            'Unexpected keyword argument "maxsize" for "SimpleQueueChannel"',
        ),
        pyright=("reportCallIssue", 'No parameter named "maxsize"'),
    ),
    Rejected(
        "pipe_channel_has_no_maxsize",
        "PipeChannel[int](maxsize=1)  # !",
        mypy=(
            "call-arg",
            'Unexpected keyword argument "maxsize" for "PipeChannel"',
        ),
        pyright=("reportCallIssue", 'No parameter named "maxsize"'),
    ),
    Rejected(
        "backend_options_are_keywords",
        "QueueChannel[int](3)  # !",
        mypy=(
            "call-arg",
            'Too many positional arguments for "QueueChannel"',
        ),
        pyright=("reportCallIssue", "Expected 0 positional arguments"),
    ),
    Rejected(
        "manager_channel_address_as_int",
        "ManagerChannel[int](address=5000)  # !",
        mypy=(
            "arg-type",
            'Argument "address" to "ManagerChannel" has incompatible type "int"',
        ),
        pyright=("reportArgumentType", 'parameter "address" of type'),
    ),
    Rejected(
        "manager_channel_manager_as_str",
        'ManagerChannel[int](manager="localhost:5000")  # !',
        mypy=(
            "arg-type",
            'Argument "manager" to "ManagerChannel" has incompatible type "str"; '
            'expected "ChannelManager | None"',
        ),
        pyright=("reportArgumentType", 'parameter "manager" of type "ChannelManager | None"'),
    ),
    # -- duplex[A, B]: the two ends the wrong way round ----------------------------
    Rejected(
        "duplex_client_sends_response_type",
        """\
        client, server = duplex[int, str]("pipe")
        client.send("request")  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "send" of "Endpoint" has incompatible type "str"; expected "int"',
        ),
        pyright=("reportArgumentType", '"Literal[\'request\']" is not assignable to "int"'),
    ),
    Rejected(
        "duplex_server_sends_request_type",
        """\
        client, server = duplex[int, str]("pipe")
        server.send(1)  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "send" of "Endpoint" has incompatible type "int"; expected "str"',
        ),
        pyright=("reportArgumentType", '"Literal[1]" is not assignable to "str"'),
    ),
    Rejected(
        "duplex_client_reads_request_type",
        """\
        client, server = duplex[int, str]("pipe")
        answer: int = client.request(1)  # !
        """,
        mypy=(
            "assignment",
            'expression has type "str", variable has type "int"',
        ),
        pyright=("reportAssignmentType", 'Type "str" is not assignable to declared type "int"'),
    ),
    Rejected(
        "duplex_ends_swapped",
        """\
        client, server = duplex[int, str]("pipe")
        def serve(end: Endpoint[str, int]) -> None: ...
        serve(client)  # !
        """,
        mypy=(
            "arg-type",
            'Argument 1 to "serve" has incompatible type "Endpoint[int, str]"; '
            'expected "Endpoint[str, int]"',
        ),
        pyright=(
            "reportArgumentType",
            '"Endpoint[int, str]" is not assignable to "Endpoint[str, int]"',
        ),
    ),
    # -- the pool: arguments checked against the function, results inferred ------
    Rejected(
        "apply_argument_of_wrong_type",
        'pool.apply(add, 1, "2")  # !',
        mypy=(
            "call-overload",
            'No overload variant of "apply" of "Pool" matches argument types '
            '"Callable[[int, int], int]", "int", "str"',
        ),
        pyright=("reportArgumentType", '"Literal[\'2\']" is not assignable to "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "apply_argument_missing",
        "pool.apply(add, 1)  # !",
        mypy=("call-overload", 'No overload variant of "apply" of "Pool" matches'),
        pyright=("reportCallIssue", 'Argument missing for parameter "b"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "apply_unknown_keyword",
        "pool.apply(square, 1, y=2)  # !",
        mypy=("call-arg", 'Unexpected keyword argument "y" for "apply" of "Pool"'),
        pyright=("reportCallIssue", 'No parameter named "y"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "apply_result_used_as_str",
        "total: str = pool.apply(add, 1, 2)  # !",
        mypy=("assignment", 'expression has type "int", variable has type "str"'),
        pyright=("reportAssignmentType", 'Type "int" is not assignable to declared type "str"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "apply_async_argument_of_wrong_type",
        'pool.apply_async(square, "x")  # !',
        mypy=("call-overload", 'No overload variant of "apply_async" of "Pool" matches'),
        pyright=("reportArgumentType", '"Literal[\'x\']" is not assignable to "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "apply_async_result_used_as_str",
        "total: str = pool.apply_async(add, 1, 2).get(timeout=1)  # !",
        mypy=("assignment", 'expression has type "int", variable has type "str"'),
        pyright=("reportAssignmentType", 'Type "int" is not assignable to declared type "str"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "apply_async_stdlib_args_of_wrong_types",
        'pool.apply_async(add, (1, "x"), callback=print)  # !',
        mypy=("arg-type", 'expected "Callable[[int, str], int]"'),
        pyright=("reportCallIssue", 'No overloads for "apply_async"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "apply_async_stdlib_tuple_without_a_callback",
        "pool.apply_async(add, (1, 2))  # !",
        mypy=("call-overload", 'No overload variant of "apply_async" of "Pool" matches'),
        pyright=("reportCallIssue", 'Argument missing for parameter "b"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "apply_async_callback_of_the_wrong_type",
        "pool.apply_async(add, args=(1, 2), callback=shout)  # !",
        mypy=("misc", 'Cannot infer value of type parameter "R" of "apply_async"'),
        pyright=("reportCallIssue", 'No overloads for "apply_async"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "map_async_callback_of_the_wrong_type",
        "pool.map_async(square, [1], callback=shout)  # !",
        mypy=(
            "arg-type",
            'Argument "callback" to "map_async" of "Pool" has incompatible type '
            '"Callable[[str], str]"',
        ),
        pyright=("reportArgumentType", '"list[int]" is not assignable to "str"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "submit_argument_of_wrong_type",
        'pool.submit(add, 1, "2")  # !',
        mypy=(
            "arg-type",
            'Argument 3 to "submit" of "Pool" has incompatible type "str"; expected "int"',
        ),
        pyright=("reportArgumentType", 'cannot be assigned to parameter "b" of type "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "executor_submit_argument_of_wrong_type",
        'PoolExecutor().submit(square, "x")  # !',
        mypy=(
            "arg-type",
            'Argument 2 to "submit" of "PoolExecutor" has incompatible type "str"; expected "int"',
        ),
        pyright=("reportArgumentType", 'cannot be assigned to parameter "x" of type "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "executor_result_used_as_str",
        "word: str = PoolExecutor().submit(square, 1).result()  # !",
        mypy=("assignment", 'expression has type "int", variable has type "str"'),
        pyright=("reportAssignmentType", 'Type "int" is not assignable to declared type "str"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "imap_readahead_as_one_number",
        "pool.imap(square, [1], readahead=100)  # !",
        mypy=(
            "arg-type",
            'Argument "readahead" to "imap" of "Pool" has incompatible type "int"; '
            'expected "tuple[int, int] | None"',
        ),
        pyright=("reportArgumentType", 'cannot be assigned to parameter "readahead"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "pool_processes_as_str",
        'Pool(processes="2")  # !',
        mypy=(
            "arg-type",
            'Argument "processes" to "Pool" has incompatible type "str"; expected "int | None"',
        ),
        pyright=("reportArgumentType", 'cannot be assigned to parameter "processes"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "starmap_tuple_of_wrong_types",
        'pool.starmap(add, [(1, "x")])  # !',
        mypy=(
            "arg-type",
            'Argument 1 to "starmap" of "Pool" has incompatible type "Callable[[int, int], int]"; '
            'expected "Callable[[int, str], int]"',
        ),
        pyright=("reportArgumentType", '"Literal[\'x\']" is not assignable to "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "starmap_tuple_too_short",
        "pool.starmap(add, [(1,)])  # !",
        mypy=(
            "arg-type",
            'Argument 1 to "starmap" of "Pool" has incompatible type "Callable[[int, int], int]"; '
            'expected "Callable[[int], int]"',
        ),
        pyright=("reportArgumentType", "Tuple size mismatch; expected 2 but received 1"),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "starmap_async_tuple_of_wrong_types",
        'pool.starmap_async(add, [("a", 1)])  # !',
        mypy=(
            "arg-type",
            'Argument 1 to "starmap_async" of "Pool" has incompatible type '
            '"Callable[[int, int], int]"; expected "Callable[[str, int], int]"',
        ),
        pyright=("reportArgumentType", '"Literal[\'a\']" is not assignable to "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "map_with_a_function_of_two_arguments",
        "pool.map(add, [1, 2])  # !",
        mypy=(
            "arg-type",
            'Argument 1 to "map" of "Pool" has incompatible type "Callable[[int, int], int]"; '
            'expected "Callable[[int], int]"',
        ),
        pyright=("reportArgumentType", 'Extra parameter "b"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "map_inputs_of_wrong_type",
        'pool.map(square, ["a"])  # !',
        mypy=(
            "arg-type",
            'Argument 1 to "map" of "Pool" has incompatible type "Callable[[int], int]"; '
            'expected "Callable[[str], int]"',
        ),
        pyright=("reportArgumentType", '"Literal[\'a\']" is not assignable to "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "map_result_used_as_list_of_str",
        "squares: list[str] = pool.map(square, [1])  # !",
        # mypy infers R from the declared type, so it blames the function.
        mypy=(
            "arg-type",
            'Argument 1 to "map" of "Pool" has incompatible type "Callable[[int], int]"; '
            'expected "Callable[[int], str]"',
        ),
        pyright=("reportAssignmentType", '"list[int]" is not assignable to "list[str]"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "map_async_result_used_as_list_of_str",
        "squares: list[str] = pool.map_async(square, [1]).get()  # !",
        mypy=(
            "assignment",
            'expression has type "list[int]", variable has type "list[str]"',
        ),
        pyright=("reportAssignmentType", '"list[int]" is not assignable to "list[str]"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "imap_result_used_as_str",
        """\
        for r in pool.imap(square, [1]):
            r.upper()  # !
        """,
        mypy=("attr-defined", '"int" has no attribute "upper"'),
        pyright=("reportAttributeAccessIssue", 'Cannot access attribute "upper" for class "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "imap_unordered_inputs_of_wrong_type",
        "pool.imap_unordered(shout, [1, 2])  # !",
        mypy=(
            "arg-type",
            'Argument 1 to "imap_unordered" of "Pool" has incompatible type '
            '"Callable[[str], str]"; expected "Callable[[int], str]"',
        ),
        pyright=("reportArgumentType", '"Literal[1]" is not assignable to "str"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "stream_inbox_of_wrong_type",
        "pool.stream(square, open_channel[str]().receiver, open_channel[int]().sender)  # !",
        mypy=(
            "arg-type",
            'Argument 1 to "stream" of "Pool" has incompatible type "Callable[[int], int]"; '
            'expected "Callable[[str], int]"',
        ),
        pyright=("reportArgumentType", '"Receiver[str]" is not assignable to "Receiver[int]"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "stream_outbox_of_wrong_type",
        "pool.stream(square, open_channel[int](), open_channel[str]())  # !",
        mypy=(
            "arg-type",
            'Argument 1 to "stream" of "Pool" has incompatible type "Callable[[int], int]"; '
            'expected "Callable[[int], str]"',
        ),
        pyright=("reportArgumentType", '"Channel[str]" is not assignable to "Sender[int]"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "stream_future_holds_no_result",
        "n: int = pool.stream(square, open_channel[int](), open_channel[int]()).result()  # !",
        mypy=("assignment", 'expression has type "None", variable has type "int"'),
        pyright=("reportAssignmentType", 'Type "None" is not assignable to declared type "int"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "pool_workers_as_str",
        'Pool(workers="4")  # !',
        mypy=(
            "arg-type",
            'Argument "workers" to "Pool" has incompatible type "str"; expected "int | None"',
        ),
        pyright=("reportArgumentType", 'parameter "workers" of type "int | None"'),
        prelude=POOL_PRELUDE,
    ),
    Rejected(
        "pool_initargs_do_not_match_initializer",
        'Pool(initializer=add, initargs=(1, "2"))  # !',
        mypy=(
            "arg-type",
            'Argument "initializer" to "Pool" has incompatible type "Callable[[int, int], int]"; '
            'expected "Callable[[int, str], object] | None"',
        ),
        pyright=("reportArgumentType", '"Literal[\'2\']" is not assignable to "int"'),
        prelude=POOL_PRELUDE,
    ),
    # -- shared state -----------------------------------------------------------------------
    Rejected(
        "value_of_str",
        'Value[str]("a")  # !',
        mypy=("type-var", 'Value of type variable "Item" of "Value" cannot be "str"'),
        pyright=("reportInvalidTypeArguments", 'Type "str" cannot be assigned to type variable'),
        prelude=STATE_PRELUDE,
    ),
    Rejected(
        "array_of_str",
        "Array[str](3)  # !",
        mypy=("type-var", 'Value of type variable "Item" of "Array" cannot be "str"'),
        pyright=("reportInvalidTypeArguments", 'Type "str" cannot be assigned to type variable'),
        prelude=STATE_PRELUDE,
    ),
    Rejected(
        "str_into_int_value",
        'Value[int](0).value = "x"  # !',
        mypy=("assignment", 'expression has type "str", variable has type "int"'),
        pyright=("reportAttributeAccessIssue", '"Literal[\'x\']" is not assignable to "int"'),
        prelude=STATE_PRELUDE,
    ),
    Rejected(
        "float_value_is_not_an_int_value",
        """\
        def bump(counter: Value[int]) -> None: ...
        bump(Value[float](1.0))  # !
        """,
        mypy=("arg-type", 'incompatible type "Value[float]"; expected "Value[int]"'),
        pyright=("reportArgumentType", '"Value[float]" is not assignable to "Value[int]"'),
        prelude=STATE_PRELUDE,
    ),
    Rejected(
        "float_array_item_is_not_str",
        "x: str = Array[float](3)[0]  # !",
        mypy=("assignment", 'expression has type "float", variable has type "str"'),
        pyright=("reportAssignmentType", '"float" is not assignable to "str"'),
        prelude=STATE_PRELUDE,
    ),
    Rejected(
        "str_into_float_array",
        'Array[float](3)[0] = "x"  # !',
        mypy=("call-overload", 'No overload variant of "__setitem__" of "Array"'),
        pyright=("reportArgumentType", '"Literal[\'x\']" is not assignable to "float"'),
        prelude=STATE_PRELUDE,
    ),
    Rejected(
        "str_into_managed_dict_of_int",
        'manager.dict[str, int]()["a"] = "x"  # !',
        mypy=("assignment", 'expression has type "str", target has type "int"'),
        pyright=("reportArgumentType", '"Literal[\'x\']" is not assignable to "int"'),
        prelude=STATE_PRELUDE,
    ),
    Rejected(
        "int_into_managed_list_of_str",
        "manager.list[str]().append(1)  # !",
        mypy=("arg-type", 'Argument 1 to "append" of "ManagedList" has incompatible type "int"'),
        pyright=("reportArgumentType", '"Literal[1]" is not assignable to "str"'),
        prelude=STATE_PRELUDE,
    ),
    Rejected(
        "lock_timeout_is_a_number",
        'Lock().acquire(timeout="1")  # !',
        mypy=("arg-type", 'Argument "timeout" to "acquire" of "Lock" has incompatible type "str"'),
        pyright=("reportArgumentType", 'cannot be assigned to parameter "timeout"'),
        prelude=STATE_PRELUDE,
    ),
]

ACCEPTED = [
    Accepted(
        "batches_asyncio_select_and_stats",
        """\
        from channels import ChannelStats, aselect, select
        words = open_channel[str]("queue")
        ch.send_many([1, 2, 3])
        from collections.abc import Sequence
        _batch: list[int] = ch.recv_many(10, timeout=1.0)
        _more: Sequence[int] = ch.receiver.recv_many_nowait(10)
        _either: int | str = select(ch, words, timeout=1.0)[1]
        _stats: ChannelStats = ch.stats()
        _fd: int = ch.receiver.fileno()

        async def main() -> None:
            await ch.asend(1)
            await ch.sender.asend_many([2, 3])
            _x: int = await ch.arecv()
            _y: list[int] = await ch.arecv_many(5)
            async with ch.sender:
                pass
            async for item in ch:
                item.bit_length()
            _z: int | str = (await aselect(ch.receiver, words.receiver))[1]
        """,
    ),
    Accepted(
        "items_of_the_channel_type",
        """\
        ch.send(3)
        ch.sender.send_nowait(4)
        x: int = ch.recv(timeout=1.0)
        y: int = ch.receiver.recv_nowait()
        for item in ch.receiver:
            item.bit_length()
        """,
    ),
    Accepted(
        "options_of_the_right_type",
        """\
        open_channel[int]("queue", maxsize=3, context="spawn", serializer="json")
        QueueChannel[int](maxsize=3)
        SimpleQueueChannel[int](max_message_size=1024)
        PipeChannel[int](spill_dir=None)
        ManagerChannel[int](address=("localhost", 5000), authkey="key", name="jobs")
        """,
    ),
    Accepted(
        "bool_receiver_where_int_receiver_wanted",
        """\
        def consume(inbox: Receiver[int]) -> None: ...
        bools = open_channel[bool]()
        consume(bools.receiver)
        consume(bools)
        """,
    ),
    Accepted(
        "int_sender_where_bool_sender_wanted",
        """\
        def produce(out: Sender[bool]) -> None: ...
        produce(ch.sender)
        produce(ch.clone())
        produce(ch)
        """,
    ),
    Accepted(
        "channel_where_either_half_wanted",
        """\
        def produce(out: Sender[int]) -> None: ...
        def consume(inbox: Receiver[int]) -> None: ...
        produce(ch)
        consume(ch)
        produce(QueueChannel[int]())
        consume(PipeChannel[int]())
        consume(ManagerChannel[bool]())
        """,
    ),
    Accepted(
        "duplex_ends_the_right_way_round",
        """\
        client, server = duplex[int, str]("pipe")
        def serve(end: Endpoint[str, int]) -> None: ...
        serve(server)
        client.send(1)
        server.send("one")
        answer: str = client.request(2)
        question: int = server.recv()
        """,
    ),
    Accepted(
        "pool_calls_of_the_right_types",
        """\
        total: int = pool.apply(add, 1, 2)
        later: int = pool.apply_async(add, 1, b=2).get(timeout=1)
        squares: list[int] = pool.map(square, range(10), chunksize=2)
        sums: list[int] = pool.starmap(add, [(1, 2), (3, 4)])
        more: list[int] = pool.starmap_async(add, [(1, 2)]).get()
        words: list[str] = pool.map_async(shout, ["a"]).get()
        for r in pool.imap(square, iter(range(3))):
            r.bit_length()
        for w in pool.imap_unordered(shout, ["b"]):
            w.upper()
        Pool(initializer=add, initargs=(1, 2))
        """,
        prelude=POOL_PRELUDE,
    ),
    Accepted(
        "pool_in_the_stdlib_forms",
        """\
        def show(n: int) -> None: ...
        def oops(e: BaseException) -> None: ...
        Pool(processes=2)
        a: int = pool.apply(add, args=(1, 2))
        b: int = pool.apply(add, args=(1,), kwds={"b": 2})
        c: int = pool.apply_async(add, (1, 2), callback=show).get()
        d: int = pool.apply_async(add, (1, 2), error_callback=oops).get()
        e: int = pool.apply_async(add, args=(1, 2), callback=show, error_callback=oops).get()
        f: list[int] = pool.map_async(square, [1], callback=print, error_callback=oops).get()
        g: int = pool.submit(add, 1, b=2).result(timeout=1)
        pool.shutdown(wait=False, cancel_futures=True)
        with PoolExecutor(max_workers=2, mp_context="spawn") as executor:
            h: int = executor.submit(add, 1, 2).result()
            for i in executor.map(add, [1], [2], timeout=1.0):
                i.bit_length()
            j: list[int] = executor.pool.map(square, [1])
        """,
        prelude=POOL_PRELUDE,
    ),
    Accepted(
        "pool_stream_between_channels",
        """\
        jobs = open_channel[int]("queue")
        results = open_channel[str]("pipe")
        def label(n: int) -> str:
            return str(n)
        pool.stream(label, jobs.receiver, results.sender).result(timeout=5)
        pool.stream(square, jobs, open_channel[float]())
        pool.stream(square, open_channel[bool](), jobs)
        """,
        prelude=POOL_PRELUDE,
    ),
    Accepted(
        "shared_state_types",
        """\
        from collections.abc import MutableMapping, MutableSequence
        hits = Value[int](0)
        with hits.lock:
            hits.value += 1
        n: int = hits.value
        ratios: MutableSequence[float] = Array[float](10)
        ratios[0] = 1
        coords = Array([1, 2, 3])
        first: int = coords[0]
        taken: bool = Lock().acquire(timeout=1.0)
        scores: MutableMapping[str, int] = manager.dict[str, int]({"a": 1})
        names: MutableSequence[str] = manager.list[str](["a"])
        """,
        prelude=STATE_PRELUDE,
    ),
]

CASES: list[Rejected | Accepted] = [*REJECTED, *ACCEPTED]


# -- running the checkers once ------------------------------------------------------


def _module(case: Rejected | Accepted) -> str:
    return f"case_{case.name}"


def _source(case: Rejected | Accepted) -> str:
    return case.prelude + "\n" + textwrap.dedent(case.body)


def _marked_line(case: Rejected) -> int:
    lines = [n for n, line in enumerate(_source(case).splitlines(), 1) if line.endswith(MARK)]
    assert len(lines) == 1, f"{case.name}: mark exactly one line with {MARK!r}"
    return lines[0]


@dataclass(frozen=True)
class Finding:
    """One error a checker reported: where, which code or rule, what it said."""

    line: int
    code: str
    message: str


Report = dict[str, list[Finding]]

_MYPY_LINE = re.compile(
    r"^(?P<path>[^:]+\.py):(?P<line>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$"
)


@pytest.fixture(scope="session")
def snippets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one module per case."""
    folder = tmp_path_factory.mktemp("typing_cases")
    for case in CASES:
        (folder / f"{_module(case)}.py").write_text(_source(case))
    return folder


@pytest.fixture(scope="session")
def mypy_report(snippets: Path) -> Report:
    """Errors per module from one ``mypy --strict`` run with the project's configuration.

    mypy runs in a child process: in this one, the memory it leaves behind
    would make every later garbage collection slow.
    """
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--show-error-codes",
            "--no-pretty",
            "--no-error-summary",
            "--cache-dir",
            str(snippets / ".mypy_cache"),
            *sorted(str(path) for path in snippets.glob("*.py")),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert done.returncode in (0, 1), f"mypy failed to run:\n{done.stderr}{done.stdout}"
    report: Report = {}
    for line in done.stdout.splitlines():
        found = _MYPY_LINE.match(line)
        if found:
            report.setdefault(Path(found["path"]).stem, []).append(
                Finding(int(found["line"]), found["code"] or "", found["message"])
            )
    return report


def _pyright(*args: str) -> Any:
    """Run pyright with ``args`` and return its JSON report."""
    pytest.importorskip("pyright", reason="pyright comes with the dev extra")
    # pyright finds installed packages through the python first on PATH.
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=120,
    )
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright failed to run:\n{done.stderr}{done.stdout}")


@pytest.fixture(scope="session")
def pyright_report(snippets: Path) -> Report:
    """Errors per module from one strict pyright run."""
    config = {
        "typeCheckingMode": "strict",
        "pythonVersion": "3.11",
        "stubPath": str(ROOT / "stubs"),
        # The shared prelude imports more than each case uses.
        "reportUnusedImport": False,
    }
    (snippets / "pyrightconfig.json").write_text(json.dumps(config))
    output = _pyright("-p", str(snippets))
    report: Report = {}
    for diagnostic in output["generalDiagnostics"]:
        if diagnostic["severity"] != "error":
            continue
        report.setdefault(Path(diagnostic["file"]).stem, []).append(
            Finding(
                diagnostic["range"]["start"]["line"] + 1,
                diagnostic.get("rule", ""),
                diagnostic["message"],
            )
        )
    return report


# -- the tests ----------------------------------------------------------------------


@pytest.mark.parametrize("case", REJECTED, ids=[case.name for case in REJECTED])
def test_mypy_rejects(case: Rejected, mypy_report: Report) -> None:
    code, message = case.mypy
    found = mypy_report.get(_module(case), [])
    assert [f.line for f in found] == [_marked_line(case)], found
    assert found[0].code == code, found
    assert message in found[0].message, found


@pytest.mark.parametrize("case", REJECTED, ids=[case.name for case in REJECTED])
def test_pyright_rejects(case: Rejected, pyright_report: Report) -> None:
    rule, message = case.pyright
    found = pyright_report.get(_module(case), [])
    assert found, f"pyright accepted {case.name}"
    # Besides the error itself, strict mode may flag what it makes unknown, on the same line.
    assert {f.line for f in found} == {_marked_line(case)}, found
    assert any(f.code == rule and message in f.message for f in found), found


@pytest.mark.parametrize("case", ACCEPTED, ids=[case.name for case in ACCEPTED])
def test_mypy_accepts(case: Accepted, mypy_report: Report) -> None:
    assert mypy_report.get(_module(case), []) == []


@pytest.mark.parametrize("case", ACCEPTED, ids=[case.name for case in ACCEPTED])
def test_pyright_accepts(case: Accepted, pyright_report: Report) -> None:
    assert pyright_report.get(_module(case), []) == []


def test_enough_misuses() -> None:
    assert len(REJECTED) >= 20
    assert len({case.name for case in CASES}) == len(CASES)


def test_public_api_fully_typed() -> None:
    """Every name ``channels`` exports has a known type, for every checker to read alike."""
    report = _pyright("--verifytypes", "channels", "--ignoreexternal")["typeCompleteness"]
    # Found the package itself, not pyright's bundled stubs for Django Channels.
    assert report["pyTypedPath"], report
    errors = [
        f"{symbol['name']}: {diagnostic['message']}"
        for symbol in report["symbols"]
        for diagnostic in symbol["diagnostics"]
        if diagnostic["severity"] == "error"
    ]
    assert errors == []
    assert report["completenessScore"] == 1.0
