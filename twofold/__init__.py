"""The analyst's side of Twofold: connect, upload, submit, wait and reveal from Python."""
