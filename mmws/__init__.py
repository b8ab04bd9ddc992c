"""mmws"""
