"""Analysis of stored runs and what is made from them: frames, statistics, lineage, figures,
files and the offline HTML report. No torch and no streamlit here."""
