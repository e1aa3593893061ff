"""Long-running work. Each job records itself in the database, reports progress through a
callback, commits as it goes and resumes after a crash. Jobs call the domain (`curator`) and
`storage`; they never print: the CLI and the app decide how progress looks."""
