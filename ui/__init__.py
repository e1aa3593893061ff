"""The Streamlit pages of `app.py`: thin views over storage and jobs."""
