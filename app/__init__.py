"""The composition root: the top floor, and the only package that imports every other one.

It reads the one `Settings`, builds every concrete class (`app.build`), runs `serve` (`app.serve`) and the CLI
commands (`app.cli`, `app.commands`), assembles the HTTP server (`app.http`), wires the scheduled jobs
(`app.jobs`) and runs `doctor` (`app.doctor`). Nothing below imports it.
"""
