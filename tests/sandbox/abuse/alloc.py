# Threat: exceed the memory limit with one ordinary allocation of `mb` MiB (every page touched), the
# way a careless data-science snippet would. Used to check the limit within a tolerance.
P = globals().get("PARAMS") or {}
data = b"\x01" * (int(P.get("mb", 300)) << 20)
print("allocated", len(data) >> 20, "MiB", flush=True)
