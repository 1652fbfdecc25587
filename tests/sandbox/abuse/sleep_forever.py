# Threat: sleep past the time limit, holding a run slot without using any CPU (a CPU limit alone
# never fires).
import time

print("sleeping", flush=True)
time.sleep(3600)
