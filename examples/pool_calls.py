"""The pool's map, starmap and apply_async, typed: results have the function's return type."""

from __future__ import annotations

import channels


def square(x: int) -> int:
    """x squared."""
    return x * x


def multiply(a: int, b: int) -> int:
    """a times b."""
    return a * b


if __name__ == "__main__":
    with channels.Pool(processes=4) as pool:
        squares: list[int] = pool.map(square, range(10))
        print("map:", squares)
        products: list[int] = pool.starmap(multiply, [(2, 3), (3, 4), (10, 10)])
        print("starmap:", products)
        done: list[int] = []
        result = pool.apply_async(multiply, (6, 7), callback=done.append)
        print("apply_async with a callback:", result.get(timeout=60))
        pending = [pool.apply_async(square, n) for n in range(3)]
        print("apply_async, typed form:", [r.get(timeout=60) for r in pending])
    print("callback got:", done)
