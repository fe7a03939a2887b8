"""Deferrable triggers of aws_ml_provider.

Like the Amazon provider's, they subclass ``AwsBaseWaiterTrigger`` and wait in the triggerer with
the hook's aiobotocore client (``hook.get_async_conn()``) on a waiter from
``hook.get_waiter(name, deferrable=True, client=client)``, which finds our custom waiter JSON
(``aws_ml_provider/waiters/*.json``) through the hooks' ``waiter_path``.
"""
