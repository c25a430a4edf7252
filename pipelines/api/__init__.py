"""The StackOne API: client, retry policy, status to result, redaction, rate limiter, user lookup."""
