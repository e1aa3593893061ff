"""Long-running work. Each job records itself in the database, reports progress through a
callback, commits as it goes and resumes after a crash. Jobs call the domain (`curator`) and
`storage`; they never print: the CLI and the app decide how progress looks.

The shape of an entry point: the database first (a connection, or its path when the job opens
connections of its own: it runs child processes or commits apart from the caller), then what
to work on and its options, then `progress(done, total, message)`; it returns a report
dataclass (job id and counts) and says in its docstring what it does and how it resumes. The
CLI opens the connection and the progress bar with cli.common.job_session.
"""
