"""The codec: how an item becomes what a core moves, and back.

``serializers`` holds the serializers (pickle, json, your own) and their
rules; ``payloads`` turns items into payloads with them (large buffers kept
apart, a batch pickled once) and payloads back into items.
"""
