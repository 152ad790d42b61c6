"""The data: which data sets exist (`datasets`), where their files are and how they are verified (`loading`),
training subsets and validation splits (`subsets`), and fetching what does not ship with dba (`fetch`)."""
