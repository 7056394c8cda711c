"""What the tests share: server processes, a kernel protocol client, simulated people."""
