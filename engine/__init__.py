"""The journey engine, one subpackage per stage a touch goes through.

language -> planning | sending -> loop -> runtime -> demo, cli (each may import only the ones
before it, plus ``channels`` and ``store``; ``.importlinter`` holds the contract and CI checks it).
"""
