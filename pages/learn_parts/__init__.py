"""The Learn page's parts: runs (what the lessons read, and whose runs to show) and lesson
(one lesson: intro, run it, chart, takeaways). The lessons themselves are data and pure
functions in the package engine/reports/lessons/."""
