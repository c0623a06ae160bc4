"""The local simulator (MuJoCo Fetch pick-and-place), a scripted teleoperator, and a session recorder."""
