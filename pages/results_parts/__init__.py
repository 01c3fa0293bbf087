"""The Results page's sections, in the order the page tells them: data (cached reads and the
choices every section shares), frontier (which model to ship), one_run (what a run cost and
where it came from) and compare (runs side by side, flipped examples, the HTML report)."""
