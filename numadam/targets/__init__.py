"""Where the kernels run: the per-element bodies generated around a rule (``body``), the segment
table they walk (``segments``, ``layout``), how operands are stored (``storage``,
``quantization``), and each target's loops and launches (``cpu``, ``cuda``), picked by array
type (``dispatch``)."""
