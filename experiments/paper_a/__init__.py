"""Paper A (Elich, Kirchdorfer et al.): its studies and reports."""
