"""A thread's workspace (issue 14): its files and kept Python state, persisted, limited, told to the model.

Called "thread files" in code because `core.store.base.Workspace` already means a Slack workspace or
Discord guild; users read "workspace".
"""
