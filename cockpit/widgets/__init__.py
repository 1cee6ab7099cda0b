"""The cockpit's panes, one per module; each has `show(snapshot)`."""
