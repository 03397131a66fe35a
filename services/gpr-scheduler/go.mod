module github.com/open-egs/egs/services/gpr-scheduler

go 1.26.0

require (
	github.com/open-egs/egs/libs v0.0.0
	github.com/open-egs/egs/libs/testkit v0.0.0
)

replace (
	github.com/open-egs/egs/libs => ../../libs
	github.com/open-egs/egs/libs/testkit => ../../libs/testkit
)
