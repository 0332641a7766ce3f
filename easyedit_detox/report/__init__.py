"""Reading results folders into tables and figures: the summary contract, comparability, Markdown/LaTeX/CSV tables, plots, paired differences, and `compare`."""
