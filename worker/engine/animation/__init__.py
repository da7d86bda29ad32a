"""Animation (``/animate``): Deforum-style camera flights rendered frame by frame and encoded to MP4.

``warp.py`` moves the camera, ``color.py`` keeps the colours of the first frame, ``encode.py`` writes
the MP4 as frames come (PyAV; why in its docstring), ``loop.py`` is the frame loop, and
``kandinsky22.py`` paints it with the Kandinsky 2.2 family's resident models. The schedules and
prompts by second are the contract's (contract/animation.py).
"""
