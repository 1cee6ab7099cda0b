"""The cockpit's screens: the main layout and its dialogs, one per module."""
