"""What the machine lets a run use: CPUs, memory, /dev/shm, native thread pools.

Read by the backends; imports nothing of the layers above.
"""
