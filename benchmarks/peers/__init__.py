"""Workload scripts, one per comparator.

Each runs in its own interpreter - the peers in their own virtualenvs, ours in
the project's - as ``python <script> '<json config>'`` and prints one line
``RESULT <json>``.  They import only the standard library, their own SDK and
``_common`` (found next to them on ``sys.path``).
"""
