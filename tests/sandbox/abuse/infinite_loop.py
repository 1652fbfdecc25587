# Threat: an infinite loop that burns CPU forever.
while True:
    pass
