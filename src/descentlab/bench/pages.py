def render_report(rows, summary, manifest):
    return "<html></html>"
