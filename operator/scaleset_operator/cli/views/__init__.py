"""What both programs render: tables, the image catalog's views, Azure-shaped JSON and the live
progress view. Models in, text or renderables out; nothing here calls the API server or
defines a command."""
